"""The operator's view: what the functions emit as CloudWatch metrics (EMF), and the template's
alarms and dashboard, which may name only metrics that something emits.

The API functions and TrainFunction run in process (the handlers' own EMF lines, printed as on
Lambda) against moto; the template is read as data. A metric renamed in the code, or a dimension
dropped, leaves an alarm or a widget naming nothing, and fails here."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable
from typing import Any, NamedTuple

import pytest

from devstack.gateway import LocalApi
from devstack.invoker import Invoker, LambdaContext
from devstack.template import Tag, document, load_application
from functions.train import app as train_app
from recsys.feedback import Source
from training import online

pytestmark = pytest.mark.integration

NAMESPACE = "MovieRecommender"

#: What AWS publishes, for the metrics of the AWS namespaces the template names: each metric's
#: dimensions, as the services document them (API Gateway REST APIs, Lambda, DynamoDB).
AWS_METRICS: dict[tuple[str, str], frozenset[str]] = {
    **{("AWS/ApiGateway", m): frozenset({"ApiName", "Stage"}) for m in ("Count", "4XXError", "5XXError", "Latency")},
    **{("AWS/Lambda", m): frozenset({"FunctionName"}) for m in ("Errors", "Throttles", "Duration")},
    **{("AWS/DynamoDB", m): frozenset({"TableName"}) for m in ("ReadThrottleEvents", "WriteThrottleEvents")},
    ("AWS/DynamoDB", "SystemErrors"): frozenset({"TableName", "Operation"}),
}
#: The DynamoDB operations the code calls (`recsys.feedback`, `recsys.events`, the training's scans).
OPERATIONS = {"PutItem", "UpdateItem", "Query", "Scan", "DeleteItem", "TransactWriteItems"}
#: Two models the site served before: their picks were shown and some liked (`seed_online`).
OLDER, NEWER = "20261204T031500Z-aaaaaaaa", "20261205T031500Z-bbbbbbbb"


class Emitted(NamedTuple):
    namespace: str
    name: str
    dimensions: dict[str, str]


def emitted(out: str) -> list[Emitted]:
    """Every metric of every EMF line in `out`, with its dimensions' values."""
    found = []
    for line in out.splitlines():
        if not line.startswith('{"_aws"') and '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for definition in blob["_aws"]["CloudWatchMetrics"]:
            for names in definition["Dimensions"]:
                for metric in definition["Metrics"]:
                    dims = {name: str(blob[name]) for name in names}
                    found.append(Emitted(definition["Namespace"], metric["Name"], dims))
    return found


class Named(NamedTuple):
    """A metric an alarm or a widget names: its dimensions' values (None: a SEARCH, any value; a
    `Tag`: a resource's name, known once deployed)."""

    where: str
    namespace: str
    name: str
    dimensions: dict[str, Any]


def named_by_alarms(resources: dict[str, Any]) -> Iterable[Named]:
    for key, res in resources.items():
        if res["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = res["Properties"]
        stats = [props] if "MetricName" in props else [m["MetricStat"]["Metric"] for m in props["Metrics"]
                                                         if "MetricStat" in m]  # fmt: skip
        assert stats, f"{key} names no metric"
        for m in stats:
            yield Named(key, m["Namespace"], m["MetricName"], {d["Name"]: d["Value"] for d in m.get("Dimensions", [])})


SEARCH = re.compile(r"""SEARCH\('\{([^}]*)\} MetricName="(\w+)"'""")


def named_by_widgets(resources: dict[str, Any]) -> Iterable[Named]:
    body: Tag = resources["Dashboard"]["Properties"]["DashboardBody"]
    # the !Sub's ${Resource} and ${AWS::...} become markers that name the resource
    text = re.sub(r"\$\{([\w:.]+)\}", r"@\1", body.value)
    widgets = json.loads(text)["widgets"]
    assert widgets
    for n, widget in enumerate(widgets):
        where = f"widget {n}: {widget['properties'].get('title')}"
        if widget["type"] == "alarm":
            for arn in widget["properties"]["alarms"]:
                assert arn.startswith("@") and arn.endswith(".Arn"), arn
                assert resources[arn[1:-4]]["Type"] == "AWS::CloudWatch::Alarm", arn
            continue
        assert widget["properties"]["metrics"], where
        for row in widget["properties"]["metrics"]:
            if isinstance(row[0], dict):  # a SEARCH: its namespace, dimension names and metric
                found = SEARCH.match(row[0]["expression"])
                assert found, row
                namespace, *dims = found.group(1).split(",")
                yield Named(where, namespace, found.group(2), dict.fromkeys(dims))
                continue
            plain = [x for x in row if not isinstance(x, dict)]
            namespace, name, *pairs = plain
            yield Named(where, namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)))


@pytest.fixture
def emf_out(stack: dict[str, Any], model_store: Any, feedback_env: dict[str, str], events_env: dict[str, str],
            capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:  # fmt: skip
    """What the API functions (a personalized answer, a fallback, a 400, a like of a shown pick) and
    TrainFunction (a published run, after two models' picks were shown, and a failed one) print,
    metrics on."""
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    monkeypatch.setenv("EVENTS_TABLE", events_env["EVENTS_TABLE"])  # as the template gives it
    seed_online(stack["store"])
    answer = train_app.lambda_handler({"source": "aws.scheduler"}, LambdaContext("TrainFunction"))
    assert answer["outcome"] == "published"
    monkeypatch.setenv("RATINGS_URI", f"s3://{stack['s3'].bucket}/nothing-here/")
    with pytest.raises(Exception):  # noqa: B017 - whatever it raises, the run must still report it failed
        train_app.lambda_handler({"source": "aws.scheduler"}, LambdaContext("TrainFunction"))
    # then the API (its Invoker sets each function's environment: MODEL_URI is the API's from here)
    app = load_application()
    local = LocalApi(app, Invoker(app, {"MODEL_URI": str(model_store), "ALLOWED_ORIGIN": "*", **feedback_env,
                                        **events_env}), "*")  # fmt: skip
    for target in ("/recommendations/1", "/recommendations/900", "/recommendations/1?k=0", "/users/1/history",
                   "/movies/1/similar"):  # fmt: skip
        local.handle("GET", target, {}, b"")
    local.handle("POST", "/recommendations", {"Content-Type": "application/json"}, b'{"liked": [99999]}')
    version = json.loads((model_store / "latest.json").read_text())["version"]
    like = {"visitor_id": str(uuid.uuid4()), "like": [2],
            "picked": [{"movie_id": 2, "list": "similar", "model_version": version, "position": 3}],
            "shown": [{"list": "similar", "model_version": version, "picks": 12}]}  # fmt: skip
    local.handle("POST", "/feedback", {"Content-Type": "application/json"}, json.dumps(like).encode())
    return capsys.readouterr().out


def seed_online(store: Any) -> None:
    """Twenty visitors, each shown 20 picks of `OLDER` and of `NEWER`: 8 liked of the older's 400,
    12 of the newer's (a ratio of 1.5)."""
    for n in range(20):
        visitor = str(uuid.UUID(int=n + 1, version=4))
        store.record_shown(visitor, {(OLDER, "taste"): 20, (NEWER, "taste"): 20})
        picks = {1 + n % 8: Source("taste", OLDER, 1)} if n < 8 else {}
        picks |= {9 + n % 12: Source("taste", NEWER, 2)} if n < 12 else {}
        store.change(visitor, list(picks), [], picks)


def test_every_alarm_and_dashboard_widget_names_a_metric_that_is_emitted(emf_out: str) -> None:
    # GIVEN the metrics the functions emitted, and the template's alarms and dashboard
    metrics = emitted(emf_out)
    resources = document()["Resources"]
    names = [*named_by_alarms(resources), *named_by_widgets(resources)]
    assert {n.namespace for n in names} >= {NAMESPACE, "AWS/Lambda", "AWS/ApiGateway", "AWS/DynamoDB"}
    # THEN each one the code emits, with exactly its dimensions and every fixed value
    for n in names:
        if n.namespace == NAMESPACE:
            assert any(m.name == n.name and m.namespace == n.namespace and set(m.dimensions) == set(n.dimensions)
                       and all(v is None or m.dimensions[k] == v for k, v in n.dimensions.items())
                       for m in metrics), f"{n.where}: {n.name} {n.dimensions} is never emitted"  # fmt: skip
            continue
        # and each AWS one is a metric that service publishes, of a resource of the stack
        assert set(n.dimensions) == AWS_METRICS.get((n.namespace, n.name)), f"{n.where}: {n.namespace} {n.name}"
        for dim, value in n.dimensions.items():
            if dim in ("FunctionName", "TableName"):
                ref = value.value if isinstance(value, Tag) else (value or "").lstrip("@") or None
                kind = "AWS::Serverless::Function" if dim == "FunctionName" else "AWS::DynamoDB::Table"
                assert ref is None or resources[ref]["Type"] == kind, f"{n.where}: {dim} {value}"
            if dim == "Operation" and value is not None:
                assert value in OPERATIONS, f"{n.where}: {value}"


def test_train_function_reports_its_outcome_and_what_it_read(emf_out: str, stack: dict[str, Any]) -> None:
    # GIVEN the metrics of a published run and then a failed one
    lines = [m for m in emitted(emf_out) if m.dimensions.get("service") == "train"]
    runs = [json.loads(line) for line in emf_out.splitlines() if '"TrainPublished"' in line]
    # THEN each run says its outcome: one metric at 1, the others at 0
    assert [{k: run[k] for k in train_app.OUTCOME_METRICS.values()} for run in runs] == [
        {"TrainPublished": [1.0], "TrainCurrent": [0.0], "TrainKept": [0.0], "TrainLostRace": [0.0],
         "TrainFailed": [0.0]},
        {"TrainPublished": [0.0], "TrainCurrent": [0.0], "TrainKept": [0.0], "TrainLostRace": [0.0],
         "TrainFailed": [1.0]},
    ]  # fmt: skip
    published = runs[0]
    # and what it read and made: the checkerboard's 600 ratings, the visitors who liked picks, the model's figures
    assert published["RatingsRead"] == [600.0] and published["Visitors"] == [12.0] and published["EventsRead"] == [0.0]
    def read(key: str) -> Any:
        return json.loads(stack["s3"].get_object(Bucket=stack["s3"].bucket, Key=f"recommender/{key}")["Body"].read())

    pointer = read("latest.json")
    metrics = read(f"models/{pointer['version']}/metrics.json")
    assert published["ServedNdcgAt10"] == [metrics["models"]["served"]["ndcg@10"]]
    created = dt.datetime.fromisoformat(pointer["created_at"].replace("Z", "+00:00"))
    assert 0 <= published["ModelAgeHours"][0] <= (dt.datetime.now(dt.UTC) - created).total_seconds() / 3600 + 0.01
    assert published["TrainSeconds"][0] > 0 and "RatingsRead" not in runs[1]
    # and how the site's picks did: the newer model's rate, and its ratio to the older's (the alarm's)
    seen = metrics["online"]
    assert [row["model_version"] for row in seen["versions"]] == [NEWER, OLDER]
    assert seen["versions"][0]["picks"] == 400 >= online.MIN_PICKS and seen["versions"][0]["liked"] == 12
    assert published["LikeThrough"] == [12 / 400] and published["LikeThroughRatio"] == [1.5]
    assert seen["change"]["ratio"] == 1.5 and seen["change"]["verdict"] == "within noise"
    # and what screening left out, a line per reason, under the service and the reason
    reasons = {m.dimensions["reason"] for m in lines if m.name == "Dropped"}
    assert reasons == set(metrics["gate"]["visitors"]["screened"]["dropped"])
    # and a cold start (the process's first run, whichever test ran it), under the function's name
    assert {str(m.dimensions) for m in lines if m.name == "ColdStart"} <= {str({"function_name": "TrainFunction",
                                                                              "service": "train"})}  # fmt: skip


def test_the_api_counts_requests_errors_and_fallbacks_by_route(emf_out: str) -> None:
    metrics = emitted(emf_out)
    routes = {m.dimensions["route"] for m in metrics if m.name == "Requests"}
    assert {"GET /recommendations/{user_id}", "GET /users/{user_id}/history", "GET /movies/{movie_id}/similar",
            "POST /recommendations"} <= routes  # fmt: skip
    lines = [json.loads(line) for line in emf_out.splitlines() if '"route"' in line and '"Requests"' in line]
    recommend = [line for line in lines if line["route"] == "GET /recommendations/{user_id}"]
    # three requests of one route: the first cold, one a 400, none a 5xx
    assert [line["ColdStarts"] for line in recommend] == [1.0, 0.0, 0.0]
    assert [line["ClientErrors"] for line in recommend] == [0.0, 0.0, 1.0]
    assert all(line["ServerErrors"] == 0.0 and line["service"] == "recommend" for line in recommend)
    # and a like of a shown pick counts the list's picks shown and liked
    online_counts = {(m.name, m.dimensions["list"]) for m in metrics if m.dimensions.get("service") == "feedback"
                     and "list" in m.dimensions}  # fmt: skip
    assert online_counts == {("Impressions", "similar"), ("AttributedLikes", "similar")}
    line = next(json.loads(x) for x in emf_out.splitlines() if '"Impressions"' in x)
    assert (line["Impressions"], line["AttributedLikes"]) == (12.0, 1.0)
    fallbacks = {(m.dimensions["route"], m.dimensions["reason"]) for m in metrics if m.name == "Fallbacks"}
    assert fallbacks == {("GET /recommendations/{user_id}", "unknown_user"),
                         ("POST /recommendations", "no_known_likes")}  # fmt: skip
