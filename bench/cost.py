"""``make cost``: what a month of the stack costs at 10k, 1M and 100M API requests, plus one training
a night, from what ``make bench`` measured and AWS list prices (bench/aws_prices.json, dated).

It prints the table, largest cost first, and writes it into docs/OPERATIONS.md between the
``cost`` markers. What is measured and what is assumed:

measured (bench/results.json, at the scale chosen)
    each route's mean time in its handler, the shipped cold start, what each function reads of
    the model, the artifact's size, TrainFunction's time and peak memory; the site's bytes per
    page (frontend/, each page with the modules it imports); the EMF line a request prints.
assumed (`MIX` and the constants below, named in the table's notes)
    the mix of routes, one page view per `REQUESTS_PER_PAGE` API requests, Lambda's own work per
    invoke, the platform's log lines, how long an idle environment lives, X-Ray's default sampling.
the template
    each function's memory, tracing on, the alarms and the dashboard, the model versions kept.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PRICES = ROOT / "bench" / "aws_prices.json"
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "OPERATIONS.md"
BEGIN, END = "<!-- cost:begin (make cost writes this part) -->", "<!-- cost:end -->"
TRAFFIC = (10_000, 1_000_000, 100_000_000)
SECONDS_A_MONTH = 30 * 86400

#: Of 100 API requests, how many each route gets, and its bench figure (`latency` of results.json)
#: and DynamoDB cost: (share, figure, read units, write units). A visitor's like: a consistent
#: Query of their items (1 RRU) and a transaction of the like, the counter and the tombstone's
#: check (3 items, 2 WRU each), and the count of shown picks (1 WRU).
MIX: dict[str, tuple[float, str, float, float]] = {
    "GET /recommendations/{user_id}": (0.35, "recommend_realtime", 0.5, 0.0),  # + the user's events, one Query
    "POST /recommendations": (0.20, "fold_in_50", 0.0, 0.0),
    "GET /movies/{movie_id}/similar": (0.15, "similar", 0.0, 0.0),
    "GET /movies": (0.10, "search", 0.0, 0.0),
    "GET /users/{user_id}/history": (0.05, "history", 0.5, 0.0),
    "POST /feedback": (0.15, "feedback", 1.0, 7.0),
}
REQUESTS_PER_PAGE = 3  # the recommendations page asks for 3 answers; the taste page 1 or 2 a change
LAMBDA_OVERHEAD_MS = 1.0  # the runtime's own work per invoke, around the handler (not measured here)
PLATFORM_LOG_BYTES = 700  # Lambda's platform.start and platform.report records, JSON (not measured here)
IDLE_MINUTES = 10  # an idle environment is reclaimed after about this long (AWS does not promise a figure)
SERVING_FUNCTIONS = 5


class Line(NamedTuple):
    item: str
    monthly: tuple[float, ...]  # per `TRAFFIC`
    how: str


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.splitlines()[0])
    p.add_argument("--scale", default="ml-10m", choices=("ml-100k", "ml-10m"), help="whose bench figures (ml-10m)")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/OPERATIONS.md as it is")
    args = p.parse_args(argv)
    prices = json.loads(PRICES.read_text())
    results = json.loads(RESULTS.read_text())
    lines = estimate(prices, results, args.scale)
    text = render(lines, prices, results, args.scale)
    print(text)
    if not args.no_write:
        doc = DOC.read_text()
        if BEGIN not in doc or END not in doc:
            print(f"{DOC} has no cost markers; nothing written", file=sys.stderr)
            return 1
        head, rest = doc.split(BEGIN, 1)
        DOC.write_text(head + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1])
        print(f"wrote the table into {DOC.relative_to(ROOT)}")
    return 0


def estimate(prices: dict[str, Any], results: dict[str, Any], scale: str) -> list[Line]:
    from devstack.template import document

    doc = document()
    resources = doc["Resources"]
    glob = doc["Globals"]["Function"]
    serving_gb = int(glob["MemorySize"]) / 1024
    train_gb = int(resources["TrainFunction"]["Properties"]["MemorySize"]) / 1024
    keep = int(resources["TrainFunction"]["Properties"]["Environment"]["Variables"]["KEEP_VERSIONS"])
    measured = results["scales"][scale]
    latency = measured["latency"]
    lam, api, ddb = prices["lambda"], prices["api_gateway_rest"], prices["dynamodb_on_demand"]
    s3, cf, cw, xray = prices["s3_standard"], prices["cloudfront"], prices["cloudwatch"], prices["xray"]
    ms = {name: _mean_ms(latency, figure, results) for name, (_, figure, _, _) in MIX.items()}
    billed_ms = sum(share * (math.ceil(ms[name]) + LAMBDA_OVERHEAD_MS) for name, (share, *_rest) in MIX.items())
    cold_s = measured["cold_start_shipped"]["RecommendFunction"]["first_200_s"]["median"]
    windows = SERVING_FUNCTIONS * SECONDS_A_MONTH / (IDLE_MINUTES * 60)
    rru = sum(share * r for share, _, r, _ in MIX.values())
    wru = sum(share * w for share, _, _, w in MIX.values())
    page_bytes, page_files = _site()
    log_bytes = PLATFORM_LOG_BYTES + _emf_bytes()
    train_s = measured["train_handler"]["seconds"]
    artifact_gb = measured["artifact"]["bytes"] / 1e9

    def per(n: int) -> dict[str, float]:
        cold = min(n, windows)
        rate = n / SECONDS_A_MONTH
        traced = n if rate <= 1 else SECONDS_A_MONTH * (1 + xray["default_sampling"]["rate"] * (rate - 1))
        reads = cold * (1 + len(measured["artifact"]["functions"]["RecommendFunction"]["parts"]))  # latest.json + parts
        reads += SERVING_FUNCTIONS * min(n, SECONDS_A_MONTH / 60)  # latest.json, at most once a minute per function
        pages = n / REQUESTS_PER_PAGE
        return {
            "api": n / 1e6 * api["requests_per_million"] if n <= 333e6 else float("nan"),
            "lambda": n / 1e6 * lam["requests_per_million"]
            + (n * billed_ms / 1000 + cold * cold_s) * serving_gb * lam["x86_64_gb_second"],
            "dynamodb": n / 1e6 * (rru * ddb["read_request_units_per_million"]
                                   + wru * ddb["write_request_units_per_million"]),
            "cloudfront": pages * page_bytes / 1e9 * cf["transfer_out_gb_first_10tb"]
            + pages * page_files / 1e4 * cf["https_requests_per_10k"],
            "logs": n * log_bytes / 1e9 * (cw["logs_ingested_gb"] + cw["logs_stored_gb_month"]),
            "xray": traced / 1e6 * xray["traces_recorded_per_million"],
            "s3": reads / 1e3 * s3["get_per_thousand"] + keep * artifact_gb * s3["storage_gb_month"],
        }

    rows = [per(n) for n in TRAFFIC]
    metrics, alarm_metrics = _custom_metrics(), _alarm_metrics(resources)
    training = 30 * (train_s * train_gb * lam["x86_64_gb_second"]) + prices["ecr"]["storage_gb_month"] * 1.0  # 1 GB
    fixed = (metrics * cw["custom_metric_month"] + alarm_metrics * cw["standard_alarm_metric_month"]
             + cw["dashboard_month"])

    def line(key: str, item: str, how: str) -> Line:
        return Line(item, tuple(r[key] for r in rows), how)

    lines = [
        line("api", "API Gateway (REST)", f"${api['requests_per_million']:.2f} per million requests"),
        line("lambda", "Lambda, the API's functions",
             f"{billed_ms:.1f} ms billed a request on average at {serving_gb:g} GB (each route's mean in the handler, "
             f"rounded up to the ms, + {LAMBDA_OVERHEAD_MS:g} ms); cold starts of {cold_s:.2f} s, at most one per "
             f"function per {IDLE_MINUTES} idle minutes"),
        line("logs", "CloudWatch Logs", f"{log_bytes:,} bytes a request (its EMF line, {PLATFORM_LOG_BYTES} of "
             "Lambda's platform records), ingested and kept a month"),
        line("xray", "X-Ray (tracing on)", "default sampling: the first request each second and 5% of the rest"),
        line("cloudfront", "CloudFront (the site)", f"a page view per {REQUESTS_PER_PAGE} API requests, "
             f"{page_bytes / 1e3:.0f} kB in {page_files:.0f} files uncached (an upper bound)"),
        line("dynamodb", "DynamoDB on demand", f"{rru:.2f} read and {wru:.2f} write units a request on average"),
        line("s3", "S3 (the model)", f"model reads on cold starts and a pointer check a minute; {keep} versions of "
             f"{measured['artifact']['bytes'] / 1e6:.0f} MB kept"),
        Line("Nightly training", (training,) * len(TRAFFIC),
             f"TrainFunction {train_s:.0f} s at {train_gb:g} GB ({measured['train_handler']['ratings'] / 1e6:.1f}M "
             f"ratings, {measured['train_handler']['seconds_per_million_ratings']:g} s per million), 30 runs; its "
             "image in ECR (about 1 GB)"),
        Line("CloudWatch metrics, alarms, dashboard", (fixed,) * len(TRAFFIC),
             f"{metrics} custom metrics (EMF), {alarm_metrics} alarm metrics, one dashboard"),
    ]
    return sorted(lines, key=lambda x: -x.monthly[-1])


def render(lines: list[Line], prices: dict[str, Any], results: dict[str, Any], scale: str) -> str:
    head = " | ".join(f"{n:,} requests" for n in TRAFFIC)
    out = [
        f"Monthly cost in {prices['currency']}, {prices['region']} list prices of {prices['as_of']} "
        f"(bench/aws_prices.json, no free tier), with `make bench`'s figures at the {scale} scale "
        f"(bench/results.json). Largest at 100M requests first. `make cost` makes this table.",
        "",
        f"| item | {head} | from |",
        "|---|" + "---:|" * len(TRAFFIC) + "---|",
    ]
    for ln in lines:
        out.append(f"| {ln.item} | " + " | ".join(usd(x) for x in ln.monthly) + f" | {ln.how} |")
    totals = [sum(ln.monthly[i] for ln in lines) for i in range(len(TRAFFIC))]
    out.append("| **total** | " + " | ".join(f"**{usd(x)}**" for x in totals) + " | |")
    out.append("| per million requests | " + " | ".join(usd(t / n * 1e6) for t, n in zip(totals, TRAFFIC, strict=True))
               + " | |")  # fmt: skip
    mix = ", ".join(f"{name} {share:.0%}" for name, (share, *_rest) in MIX.items())
    out += ["", f"The mix of requests assumed: {mix}."]
    return "\n".join(out)


def usd(x: float) -> str:
    return f"${x:,.2f}" if x < 1000 else f"${x:,.0f}"


def _mean_ms(latency: dict[str, Any], figure: str, results: dict[str, Any]) -> float:
    if figure == "feedback":  # the demo's POST /feedback of 48 likes each, against moto (bench --demo-feedback-only)
        demo = results["demo_feedback"]
        return float(demo["posts_seconds"]) / float(demo["posts"]) * 1000
    return float(latency[figure]["mean_ms"])


def _site() -> tuple[float, float]:
    """The mean bytes and files of a page of the site with everything it imports (uncompressed)."""
    site = ROOT / "frontend"
    pages = sorted(site.glob("*.html"))
    sizes, counts = [], []
    for page in pages:
        files = {page, site / "css" / "site.css", site / "favicon.svg"}
        todo = [site / m for m in re.findall(r'src="([^"]+\.js)"', page.read_text())]
        while todo:
            js = todo.pop()
            if js in files or not js.exists():
                continue
            files.add(js)
            todo += [(js.parent / m).resolve() for m in re.findall(r'from "(\.[^"]+\.js)"', js.read_text())]
        sizes.append(sum(f.stat().st_size for f in files if f.exists()))
        counts.append(len(files))
    return sum(sizes) / len(sizes), sum(counts) / len(counts)


def _emf_bytes() -> int:
    """The bytes of the EMF line each API request prints (`recsys.telemetry`), newline included."""
    from recsys.telemetry import Metrics

    m = Metrics(namespace="MovieRecommender")
    line = m.emf({k: ("Count", [0.0]) for k in ("Requests", "ClientErrors", "ServerErrors", "ColdStarts")},
                 {"service": "recommend", "route": "GET /recommendations/{user_id}"})  # fmt: skip
    return len(line) + 1


def _custom_metrics() -> int:
    """Metrics the code emits, each name with each set of dimension values once."""
    api = json.loads((ROOT / "docs" / "openapi.json").read_text())
    routes = sum(1 for methods in api["paths"].values() for m in methods if m != "options")
    fallbacks = 4  # (route, reason) pairs: unknown user, no likes, no known likes, model unavailable
    online = 2 * 4  # Impressions and AttributedLikes, per list
    cold = SERVING_FUNCTIONS + 1  # ColdStart per function, TrainFunction's too
    train = 5 + 9 + 6  # outcomes; seconds, what it read, ndcg, age, like-through and ratio; Dropped per reason
    return routes * 4 + fallbacks + online + cold + train


def _alarm_metrics(resources: dict[str, Any]) -> int:
    alarms = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    return sum(1 if "MetricName" in a else sum(1 for m in a["Metrics"] if "MetricStat" in m) for a in alarms)


if __name__ == "__main__":
    sys.exit(main())
