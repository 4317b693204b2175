"""TrainFunction's handler in process, against moto S3 and DynamoDB: visitors train as users and are
never served, a forgotten visitor leaves no trace in the next model, a worse model is not
published, and two runs at once leave one consistent pointer."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from devstack.invoker import LambdaContext
from functions.train import app as train_app
from recsys import service
from recsys.errors import UnknownUserError
from recsys.store import open_model
from tests import data

pytestmark = pytest.mark.integration


def train() -> dict[str, Any]:
    answer: dict[str, Any] = train_app.lambda_handler({"source": "aws.scheduler"}, LambdaContext("TrainFunction"))
    return answer


def metrics(stack: dict[str, Any], version: str) -> dict[str, Any]:
    body = stack["s3"].get_object(Bucket=stack["s3"].bucket, Key=f"recommender/models/{version}/metrics.json")["Body"]
    loaded: dict[str, Any] = json.loads(body.read())
    return loaded


def test_visitors_train_as_users_are_never_served_and_a_forgotten_one_leaves_no_trace(stack: dict[str, Any]) -> None:
    # GIVEN a model trained on the base ratings alone
    first = train()
    assert first["outcome"] == "published" and first["previous"] is None
    base = open_model(stack["MODEL_URI"])
    # WHEN three visitors like movies, one of them all of group 0's, and the job runs again
    visitors = {str(uuid.uuid4()): likes for likes in (list(range(1, 13)), [13, 14, 15], [13, 20])}
    for visitor, likes in visitors.items():
        stack["store"].change(visitor, likes, [])
    second = train()
    assert second["outcome"] == "published" and second["previous"] == first["serving"]
    model = open_model(stack["MODEL_URI"])
    # THEN their likes counted: each movie's likes are the base's plus the visitors'
    expected = Counter(m for likes in visitors.values() for m in likes)
    added = {int(model.item_ids[i]): int(n) for i, n in enumerate(model.like_counts - base.like_counts) if n}
    assert added == dict(expected)
    reported = metrics(stack, second["serving"])["data"]["visitors"]
    assert {k: reported[k] for k in ("visitors", "likes", "likes_read", "movies_at_budget")} == {
        "visitors": 3, "likes": 17, "likes_read": 17, "movies_at_budget": 0}  # fmt: skip
    assert second["visitors"]["included"] is True
    # AND the evaluation is the dataset's: the same split, the same users, no visitor held out
    split, base_split = metrics(stack, second["serving"])["split"], metrics(stack, first["serving"])["split"]
    assert (split["name"], split["evaluated_users"]) == (base_split["name"], base_split["evaluated_users"])
    # AND no visitor is a user the history routes serve: the users are the dataset's 40
    assert sorted(model.user_ids.tolist()) == list(range(1, data.GROUPS * data.USERS_PER_GROUP + 1))
    sampled = {u["user_id"] for u in service.sample_users(model, 100, 0)["items"]}
    assert sampled <= set(range(1, 41))
    with pytest.raises(UnknownUserError):
        service.history(model, 41, 10, 0)
    # WHEN the visitor who liked group 0 presses "forget me", and the job runs
    forgotten = next(iter(visitors))
    stack["store"].forget(forgotten)
    third = train()
    # THEN the next model counts only the two others' likes
    model = open_model(stack["MODEL_URI"])
    remaining = Counter(m for v, likes in visitors.items() if v != forgotten for m in likes)
    added = {int(model.item_ids[i]): int(n) for i, n in enumerate(model.like_counts - base.like_counts) if n}
    assert third["outcome"] == "published" and added == dict(remaining)
    assert metrics(stack, third["serving"])["data"]["visitors"]["visitors"] == 2


def test_a_worse_model_is_not_published(stack: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    # GIVEN a model trained on the checkerboard, serving
    first = train()
    # WHEN the base ratings are replaced by noise (the same users and movies, random likes) and the
    # job runs with the template's default tolerance
    monkeypatch.setenv("MAX_VALIDATION_DROP", "0.05")
    rng = np.random.default_rng(7)
    pairs = [(u, m) for u in range(1, 41) for m in rng.choice(24, 14, replace=False) + 1]
    rows = [f"{u}\t{m}\t{int(rng.choice([1, 5]))}\t{880000000 + 37 * n}" for n, (u, m) in enumerate(pairs)]
    stack["s3"].put_object(Bucket=stack["s3"].bucket, Key="ratings/u.data", Body=("\n".join(rows) + "\n").encode())
    answer = train()
    # THEN the serving model stays, and the log says why
    assert answer == {"outcome": "kept", "serving": first["serving"], "previous": first["serving"]}
    err = capsys.readouterr().err
    assert f"kept {first['serving']}" in err and "clean validation ndcg@10" in err and "the floor" in err
    listed = stack["s3"].list_objects_v2(Bucket=stack["s3"].bucket, Prefix="recommender/models/", Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == [f"recommender/models/{first['serving']}/"]


def test_two_runs_at_once_leave_one_consistent_pointer(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN two runs that have both read the pointer and trained, and publish at the same moment
    from training import cli

    both_trained = threading.Barrier(2, timeout=300)
    real_publish = cli.publish

    def publish_together(*args: Any, **kwargs: Any) -> Any:
        both_trained.wait()
        return real_publish(*args, **kwargs)

    monkeypatch.setattr(cli, "publish", publish_together)
    answers: list[dict[str, Any]] = []
    runs = [threading.Thread(target=lambda: answers.append(train())) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=600)
    # THEN one published and the other lost the race
    assert sorted(a["outcome"] for a in answers) == ["lost_race", "published"]
    winner = next(a["serving"] for a in answers if a["outcome"] == "published")
    assert all(a["serving"] == winner for a in answers)
    # AND the pointer names a complete model (every part there, sizes and digests checked on load),
    # and the loser left no files behind
    assert open_model(stack["MODEL_URI"]).version == winner
    listed = stack["s3"].list_objects_v2(Bucket=stack["s3"].bucket, Prefix="recommender/models/", Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == [f"recommender/models/{winner}/"]


def test_bad_ratings_make_the_invocation_fail(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RATINGS_URI", f"s3://{stack['s3'].bucket}/nothing-here/")
    with pytest.raises(RuntimeError, match="exit code 2"):
        train()
    assert "Contents" not in stack["s3"].list_objects_v2(Bucket=stack["s3"].bucket, Prefix="recommender/")
    assert os.environ["MODEL_URI"].endswith("/recommender")


@pytest.mark.parametrize("damage", ["missing", "not json"])
def test_the_gate_fails_closed_when_the_serving_models_metrics_cannot_be_read(
    stack: dict[str, Any], damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a serving model whose metrics.json is gone, or unreadable
    first = train()
    key = f"recommender/models/{first['serving']}/metrics.json"
    s3 = stack["s3"]
    if damage == "missing":
        s3.delete_object(Bucket=s3.bucket, Key=key)
    else:
        s3.put_object(Bucket=s3.bucket, Key=key, Body=b"{not json")
    # WHEN the job runs THEN the invocation fails, nothing is published, and the log says why
    with pytest.raises(RuntimeError, match="exit code 5"):
        train()
    assert open_model(stack["MODEL_URI"]).version == first["serving"]
    assert "metrics.json" in capsys.readouterr().err


def test_a_store_that_refuses_a_write_is_an_error_not_a_lost_race(stack: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from training.publish import PublishError, S3Writer

    first = train()

    def denied(self: Any, relative: str, data: bytes) -> None:
        raise PublishError(f"cannot write {relative}: AccessDenied")

    monkeypatch.setattr(S3Writer, "put_new", denied)
    monkeypatch.setenv("MAX_VALIDATION_DROP", "1")
    with pytest.raises(RuntimeError, match="exit code 5"):
        train()
    assert open_model(stack["MODEL_URI"]).version == first["serving"]


def test_when_the_gate_leaves_the_visitors_out_the_clean_model_is_published_and_says_so(
    stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import cli, gate

    # GIVEN a serving model, two visitors' likes, and a gate that finds the visitors made it worse
    first = train()
    base = open_model(stack["MODEL_URI"])
    for likes in ([13, 14, 15], [1, 2]):
        stack["store"].change(str(uuid.uuid4()), likes, [])
    real = gate.decide

    def visitors_hurt(*args: Any, **kwargs: Any) -> gate.Decision:
        decided = real(*args, **kwargs)
        why = "the visitors' likes lower served by 9.0%, more than the band of 5% and the noise"
        reason = f"published the clean model: {why}"
        report = {**decided.report, "decision": "clean", "why": reason, "visitors": {"included": False, "why": why}}
        return gate.Decision("clean", reason, report)

    monkeypatch.setattr(cli.gate, "decide", visitors_hurt)
    # WHEN the job runs
    answer = train()
    # THEN the clean model is published, not nothing, and the answer, metrics.json and the model say why
    assert answer["outcome"] == "published" and answer["previous"] == first["serving"]
    assert answer["visitors"]["included"] is False and "lower served" in answer["visitors"]["why"]
    model = open_model(stack["MODEL_URI"])
    assert (model.like_counts == base.like_counts).all()
    reported = metrics(stack, answer["serving"])
    assert reported["data"]["visitors"]["left_out"] == {"visitors": 2, "likes": 5}
    assert reported["gate"]["visitors"]["screened"]["visitors"] == 2
    assert model.provenance["data"]["visitors"]["left_out"] == {"visitors": 2, "likes": 5}
    # AND the training report shows the gate's decision and its figures
    key = f"recommender/models/{answer['serving']}/report.html"
    report = stack["s3"].get_object(Bucket=stack["s3"].bucket, Key=key)["Body"].read().decode()
    assert "<h2>Quality gate</h2>" in report and "lower served by 9.0%" in report and "with visitors" in report


def test_the_sites_users_events_train_them_as_themselves_and_a_forgotten_user_leaves(
    stack: dict[str, Any], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devstack.dynamodb import create_events_table
    from recsys.events import Event, EventLog, EventsSettings

    # GIVEN an events table: a new id likes group 1's movies, user 2 is forgotten, user 3 rates
    # its unrated movie (what the model recommends first) 1
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    table = create_events_table(dynamodb, f"events-{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("EVENTS_TABLE", table)
    log = EventLog(dynamodb, EventsSettings(table))
    now = int(time.time() * 1000)
    log.record(500, [Event(m, "like", now - 1000 * m) for m in (13, 14, 15, 16)])
    log.forget(2)
    unseen = 3 + 1  # user 3's unrated movie: 3 % 12 + 1
    log.record(3, [Event(unseen, "rating", now, 1.0)])
    other = max(set(range(13, 25)) - data.rated_by(4))  # user 4 likes a movie of the other group
    log.record(4, [Event(other, "like", now - 60_000)])
    # WHEN TrainFunction runs
    answer = train()
    assert answer["outcome"] == "published"
    model = open_model(stack["MODEL_URI"])
    # THEN the new id is a user of the model, served by id with their likes as history
    u = model.user_index(500)
    assert u is not None and set(model.item_ids[model.history_items[model.liked(u)]].tolist()) <= {13, 14, 15, 16}
    picks = service.recommendations(model, 500, 5, "personalized", None, False)
    assert picks["model"] == "personalized" and not {13, 14, 15, 16} & {i["movie_id"] for i in picks["items"]}
    # and user 2 is gone from it, user 3's rating is theirs: seen, so never recommended
    assert model.user_index(2) is None
    assert unseen in model.item_ids[model.seen(model.user_index(3))].tolist()
    # user 4's like is in their own row, their newest like, and they are no new user or visitor
    u4 = model.user_index(4)
    assert u4 is not None and int(model.item_ids[model.history_items[model.liked(u4).start]]) == other
    assert model.n_users == 40  # 40 in the file, one new id, one forgotten
    reported = metrics(stack, answer["serving"])["data"]["events"]
    assert {k: reported[k] for k in ("events", "users", "new_users", "forgotten_users")} == {
        "events": 6, "users": 3, "new_users": 1, "forgotten_users": 1}  # fmt: skip
    assert reported["ratings_forgotten"] == len(data.rated_by(2))
