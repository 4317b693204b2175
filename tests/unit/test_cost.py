"""`make cost`: the monthly estimate adds up, grows with traffic, and is ordered largest first."""

from __future__ import annotations

import json

import pytest

from bench import cost

pytestmark = pytest.mark.unit


def test_the_estimate_adds_up_and_puts_the_largest_cost_at_the_busiest_traffic_first() -> None:
    prices = json.loads(cost.PRICES.read_text())
    results = json.loads(cost.RESULTS.read_text())
    lines = cost.estimate(prices, results, "ml-10m")
    at_most = [line.monthly[-1] for line in lines]
    assert at_most == sorted(at_most, reverse=True)
    # every traffic-driven line grows with traffic; the fixed ones do not move
    for line in lines:
        assert list(line.monthly) == sorted(line.monthly), line.item
    fixed = {line.item for line in lines if line.monthly[0] == line.monthly[-1]}
    assert fixed == {"Nightly training", "CloudWatch metrics, alarms, dashboard"}
    # API Gateway is its list price per request, exactly
    api = next(line for line in lines if line.item.startswith("API Gateway"))
    assert api.monthly[1] == pytest.approx(prices["api_gateway_rest"]["requests_per_million"])
    # and the table's totals are the sums of its lines
    table = cost.render(lines, prices, results, "ml-10m")
    total = sum(line.monthly[0] for line in lines)
    assert f"**{cost.usd(total)}**" in table and prices["as_of"] in table


def test_training_costs_what_its_measured_time_and_memory_cost() -> None:
    prices = json.loads(cost.PRICES.read_text())
    results = json.loads(cost.RESULTS.read_text())
    slower = json.loads(cost.RESULTS.read_text())
    slower["scales"]["ml-10m"]["train_handler"]["seconds"] *= 2

    def training(r: dict) -> float:
        return next(line.monthly[0] for line in cost.estimate(prices, r, "ml-10m") if line.item == "Nightly training")

    ecr = prices["ecr"]["storage_gb_month"]
    assert training(slower) - ecr == pytest.approx(2 * (training(results) - ecr))
