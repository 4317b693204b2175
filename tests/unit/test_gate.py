"""The quality gate's decisions (`training.gate`): visitors kept only within the band either way, the
floor carried from clean figures only, and a serving model whose figures may be visitors' no floor."""

from __future__ import annotations

from typing import Any

import pytest

from training import gate

pytestmark = pytest.mark.unit


def run(served: float, popularity: float = 0.10, fold_in: float = 0.19, se: float = 0.001) -> dict[str, Any]:
    """A run's metrics as the pipeline writes them (tight standard errors: the band decides)."""
    return {"gate": {"figures": {"served": served, "popularity": popularity, "fold_in": fold_in},
                     "standard_errors": {"served": se, "popularity": se, "fold_in": se}}}  # fmt: skip


def serving(clean_served: float, version: str = "v1") -> dict[str, Any]:
    return {"version": version, "gate": {"clean": {"served": clean_served, "popularity": 0.10, "fold_in": 0.19}}}


def test_visitors_within_the_band_are_published_with_the_model() -> None:
    decision = gate.decide(run(0.185), run(0.187), serving(0.186), max_drop=0.05)
    assert decision.run == "with_visitors" and decision.report["visitors"]["included"] is True


def test_visitors_that_lower_a_figure_are_left_out_and_the_clean_model_is_published() -> None:
    decision = gate.decide(run(0.185), run(0.185, popularity=0.08), serving(0.186), max_drop=0.05)
    assert decision.run == "clean" and "lower popularity by 20.0%" in decision.reason


def test_visitors_that_raise_accuracy_on_held_out_likes_are_left_out_as_a_leak() -> None:
    # the copy attack: validation ndcg@10 0.185 -> 0.2345 from copies of users' histories
    decision = gate.decide(run(0.185), run(0.2345), serving(0.186), max_drop=0.05)
    assert decision.run == "clean" and "raise served by 26.8%" in decision.reason and "held-out" in decision.reason


def test_the_band_widens_to_the_noise_of_a_figure_on_few_users() -> None:
    # fold-in on 94 users: a standard error of 0.02 on 0.19 makes a 10% move noise (2 standard errors: 21%)
    noisy = run(0.185, fold_in=0.19, se=0.02)
    noisy["gate"]["standard_errors"]["served"] = 0.001
    assert gate.decide(noisy, run(0.185, fold_in=0.171), None, max_drop=0.05).run == "with_visitors"
    assert gate.decide(run(0.185), run(0.185, fold_in=0.171), None, max_drop=0.05).run == "clean"


def test_a_clean_model_below_the_floor_is_kept_out_whatever_the_visitors() -> None:
    decision = gate.decide(run(0.15), run(0.15), serving(0.186), max_drop=0.05)
    assert decision.run is None and "the floor" in decision.reason and "v1's clean run" in decision.reason


def test_a_poisoned_serving_model_is_no_floor_for_the_next_clean_one() -> None:
    # GIVEN a model published by a gate that let copies through: its served figure is theirs (0.2345),
    # its clean figure is what the dataset alone gave (0.185)
    poisoned = {**serving(0.185), "served": {"validation": {"ndcg@10": 0.2345}}}
    # THEN the next clean retrain is judged against 0.185, and published
    assert gate.decide(run(0.184), None, poisoned, max_drop=0.05).run == "clean"
    # AND a model from before this gate, trained with visitors, sets no floor at all; one without
    # visitors sets its served figure as the floor
    legacy = {"version": "old", "served": {"validation": {"ndcg@10": 0.2345}}, "data": {"visitors": {"visitors": 943}}}
    assert gate.floor_of(legacy)[0] == {}
    assert gate.decide(run(0.184), None, legacy, max_drop=0.05).run == "clean"
    clean_legacy = {**legacy, "data": {"visitors": {"visitors": 0}}}
    assert gate.floor_of(clean_legacy)[0] == {"served": 0.2345}
    assert gate.decide(run(0.184), None, clean_legacy, max_drop=0.05).run is None


def test_what_a_publish_carries_forward_is_the_clean_runs_figures() -> None:
    decision = gate.decide(run(0.185), run(0.187), serving(0.186), max_drop=0.05)
    assert decision.report["clean"] == {"served": 0.185, "popularity": 0.10, "fold_in": 0.19}
    assert gate.floor_of({"version": "v2", "gate": decision.report})[0] == decision.report["clean"]
