from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from functions.history import app as history_app
from functions.recommend import app as recommend_app
from functions.similar import app as similar_app
from recsys import api, store
from recsys.parts import dump_part, load_part
from recsys.runtime import Runtime
from tests import data
from tests.conftest import free_port, load_event

pytestmark = pytest.mark.integration


def call(module: ModuleType, ctx: Any, name: str, path: str | None = None, **query: str) -> tuple[int, dict, dict]:
    event = load_event(name)
    event["headers"] = {**event["headers"], "Origin": os.environ.get("ALLOWED_ORIGIN", "*")}
    if path is not None:
        event["path"] = path
        params = {k: v for k, v in zip(event["resource"].split("/"), path.split("/"), strict=True) if k.startswith("{")}
        event["pathParameters"] = {k.strip("{}"): v for k, v in params.items()} or None
    if query:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    response = module.lambda_handler(event, ctx)
    headers = {k: v[-1] for k, v in response.get("multiValueHeaders", {}).items()}
    return response["statusCode"], json.loads(response["body"]), headers


@pytest.fixture
def served(s3, checkerboard_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:  # type: ignore[no-untyped-def]
    """A checkerboard model published to the moto server; fresh containers for the three functions."""
    uri = f"s3://{s3.bucket}/recommender"
    assert data.train(checkerboard_dir, uri) == 0
    os.environ.update(MODEL_URI=uri, ALLOWED_ORIGIN="https://site.example")
    for module in (recommend_app, history_app, similar_app):
        monkeypatch.setattr(module, "runtime", Runtime(parts=module.runtime.parts))
    return uri


def test_every_route_answers_from_the_model_in_s3(served: str, lambda_context: Any) -> None:
    status, body, headers = call(
        recommend_app, lambda_context, "recommend", "/recommendations/1", k="3", explain="true"
    )
    assert status == 200 and len(body["items"]) == 3 and body["model"] == "personalized"
    assert body["items"][0]["movie_id"] == data.ITEMS_PER_GROUP * 0 + 1 % data.ITEMS_PER_GROUP + 1
    assert all(len(i["because_you_liked"]) <= 3 for i in body["items"])
    assert headers["Access-Control-Allow-Origin"] == "https://site.example"
    version = body["model_version"]
    checks = [
        (recommend_app, "recommend-popularity", "/recommendations/1", {"k": "2", "model": "popularity"}),
        (recommend_app, "model", None, {}),
        (history_app, "history", "/users/1/history", {"k": "5"}),
        (history_app, "users", None, {"limit": "4", "seed": "1"}),
        (similar_app, "similar", "/movies/1/similar", {"k": "4"}),
        (similar_app, "movies", None, {"query": "movie 1"}),
    ]
    for module, name, path, query in checks:
        status, body, _ = call(module, lambda_context, name, path, **query)
        assert status == 200, (name, body)
        assert body["model_version"] == version
    status, body, _ = call(similar_app, lambda_context, "similar", "/movies/1/similar", k="3")
    assert all(data.group_of_item(i["movie_id"]) == 0 for i in body["items"])  # its own group is closest


def test_unknown_user_falls_back_to_popularity(served: str, lambda_context: Any) -> None:
    status, body, _ = call(recommend_app, lambda_context, "recommend", "/recommendations/999999", k="5")
    assert status == 200 and body["fallback"] == "unknown_user" and len(body["items"]) == 5


@pytest.mark.parametrize("module, name, path, query, status, code", [
    (recommend_app, "recommend", "/recommendations/1", {"k": "0"}, 400, "invalid_request"),
    (recommend_app, "recommend", "/recommendations/1", {"k": "101"}, 400, "invalid_request"),
    (recommend_app, "recommend", "/recommendations/1", {"model": "magic"}, 400, "invalid_request"),
    (recommend_app, "recommend", "/recommendations/1", {"genre": "Opera"}, 404, "unknown_genre"),
    (recommend_app, "recommend", "/recommendations/abc", {}, 400, "invalid_request"),
    (recommend_app, "recommend", "/recommendations/99999999999999999999", {}, 400, "invalid_request"),
    (history_app, "history", "/users/424242/history", {}, 404, "unknown_user"),
    (similar_app, "similar", "/movies/424242/similar", {}, 404, "unknown_movie"),
])  # fmt: skip
def test_bad_requests_get_clear_json_errors(
    served: str, lambda_context: Any, module: ModuleType, name: str, path: str, query: dict, status: int, code: str
) -> None:
    got, body, headers = call(module, lambda_context, name, path, **query)
    assert (got, body["error"]["code"]) == (status, code)
    assert body["error"]["message"]
    assert headers["Access-Control-Allow-Origin"] == "https://site.example"


def test_refresh_swaps_in_a_new_version_and_survives_a_broken_one(
    served: str,
    s3,
    checkerboard_dir: Path,
    lambda_context: Any,  # type: ignore[no-untyped-def]
) -> None:
    os.environ["MODEL_REFRESH_SECONDS"] = "0"
    _, first, _ = call(recommend_app, lambda_context, "model")
    # WHEN a new model is published THEN the next request serves it
    assert data.train(checkerboard_dir, served) == 0
    _, second, _ = call(recommend_app, lambda_context, "model")
    assert second["model_version"] != first["model_version"]
    # WHEN the pointer is swung to a model whose bytes do not match THEN the old one keeps serving
    pointer = json.loads(s3.get_object(Bucket=s3.bucket, Key="recommender/latest.json")["Body"].read())
    s3.put_object(
        Bucket=s3.bucket,
        Key="recommender/latest.json",
        Body=json.dumps({**pointer, "version": "x", "sha256": "0" * 64}),
    )
    status, third, _ = call(recommend_app, lambda_context, "model")
    assert status == 200 and third["model_version"] == second["model_version"]


def test_cold_start_on_a_broken_pointer_is_503(served: str, s3, lambda_context: Any) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(
        Bucket=s3.bucket,
        Key="recommender/latest.json",
        Body=b'{"version": "v", "parts": {"catalog": {"key": "models/none/catalog.pkl", "sha256": "0", "size": 1}}}',
    )
    status, body, headers = call(recommend_app, lambda_context, "model")
    assert status == 503 and body["error"]["code"] == "model_unavailable"
    assert headers["Retry-After"] == str(api.RETRY_AFTER_SECONDS)


def _break(s3, how: str) -> None:  # type: ignore[no-untyped-def]
    """Publish a broken model the way `how` says, leaving the pointer naming it."""
    key = "recommender/latest.json"
    pointer = json.loads(s3.get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    version = f"broken-{how}"
    parts = {}
    for name, entry in pointer["parts"].items():  # our own parts, read as serving does, copied to tamper with
        data = s3.get_object(Bucket=s3.bucket, Key=f"recommender/{entry['key']}")["Body"].read()
        loaded = load_part(data, name=name, version=pointer["version"], sha256=entry["sha256"], size=entry["size"])
        parts[name] = {f: np.array(v) if isinstance(v, np.ndarray) else v for f, v in loaded.items()}
    if how in HOSTILE:  # pickles that pass size, sha256 and the allow-list, with a state made to do harm
        HOSTILE[how](parts)
    entries = {}
    for name, part_fields in parts.items():
        blob = dump_part(name, version, part_fields)
        entries[name] = {
            "key": f"models/{version}/{name}.pkl",
            "sha256": hashlib.sha256(blob).hexdigest(),
            "size": len(blob),
        }
        if name == "catalog" and how == "truncated":
            blob = blob[: len(blob) // 2]
        elif name == "catalog" and how == "wrong_sha256":
            tampered = bytearray(blob)
            tampered[len(tampered) // 2] ^= 1  # one bit of one byte
            blob = bytes(tampered)
        if how != "missing_key":  # "missing_key": the pointer names parts that were never written
            s3.put_object(Bucket=s3.bucket, Key=f"recommender/{entries[name]['key']}", Body=blob)
    s3.put_object(Bucket=s3.bucket, Key=key, Body=json.dumps({**pointer, "version": version, "parts": entries}))


HOSTILE: dict[str, Any] = {  # what a crafted part can hold, beside or instead of the artifact's fields
    "preset_private_cache": lambda parts: parts["catalog"].update(_item_positions={1: 10**9}),
    "shadowed_validate": lambda parts: parts["catalog"].update(validate=np.dtype),
    "wrong_attribute_type": lambda parts: parts["catalog"].update(titles=list(parts["catalog"]["titles"])),
    "array_where_tuple": lambda parts: parts["catalog"].update(genre_names=np.zeros(2)),
    "nan_factors": lambda parts: parts["item_vectors"]["item_factors"].__setitem__((0, 0), np.nan),
    "inf_bias": lambda parts: parts["user_vectors"]["user_biases"].__setitem__(0, np.inf),
    "extra_field": lambda parts: parts["catalog"].update(extra=1),
    "missing_field": lambda parts: parts["catalog"].pop("popularity"),
    "users_disagree": lambda parts: parts["user_vectors"].update(
        user_factors=parts["user_vectors"]["user_factors"][:-1], user_biases=parts["user_vectors"]["user_biases"][:-1]
    ),
    "history_out_of_range": lambda parts: parts["histories"]["history_items"].__setitem__(0, 10**4),
}
BROKEN = ["missing_key", "truncated", "wrong_sha256", *HOSTILE]


@pytest.mark.parametrize("how", BROKEN)
def test_a_broken_model_is_503_on_a_cold_container(served: str, s3, lambda_context: Any, how: str) -> None:  # type: ignore[no-untyped-def]
    _break(s3, how)
    status, body, headers = call(recommend_app, lambda_context, "recommend")
    assert status == 503 and body["error"] == {
        "code": "model_unavailable", "message": api.UNAVAILABLE_MESSAGE, "request_id": body["error"]["request_id"]
    }  # fmt: skip
    assert body["error"]["request_id"] not in ("", "unknown")
    assert headers["Retry-After"] == str(api.RETRY_AFTER_SECONDS)
    assert headers["Access-Control-Allow-Origin"] == "https://site.example"


@pytest.mark.parametrize("how", BROKEN)
def test_a_broken_model_never_replaces_the_one_a_warm_container_serves(
    served: str,
    s3,
    lambda_context: Any,
    how: str,  # type: ignore[no-untyped-def]
) -> None:
    os.environ["MODEL_REFRESH_SECONDS"] = "0"
    _, before, _ = call(recommend_app, lambda_context, "recommend")
    assert call(similar_app, lambda_context, "similar", "/movies/1/similar")[0] == 200
    _break(s3, how)
    for _ in range(3):  # each request checks the pointer again, and keeps refusing
        status, after, _ = call(recommend_app, lambda_context, "recommend")
        assert status == 200 and after["model_version"] == before["model_version"]
        assert after["items"] == before["items"]
        status, similar, _ = call(similar_app, lambda_context, "similar", "/movies/1/similar")
        assert status == 200
        if how not in SIMILAR_PARTS_INTACT:
            assert similar["model_version"] == before["model_version"]


#: Breakages confined to parts SimilarFunction does not load: it may serve that version's item side.
SIMILAR_PARTS_INTACT = {"inf_bias", "users_disagree", "history_out_of_range"}


def _black_hole() -> tuple[socket.socket, int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.extend(iter(lambda: listener.accept()[0], None)), daemon=True).start()
    return listener, listener.getsockname()[1]


@pytest.mark.parametrize("fault", ["refused", "black-holed"])
def test_s3_down_at_cold_start_is_503_with_bounded_timeouts_then_recovers(
    fault: str, checkerboard_dir: Path, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    from moto.server import ThreadedMotoServer

    port = free_port()
    hole = None
    if fault == "black-holed":
        hole, port = _black_hole()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", MODEL_URI="s3://down/recommender", ALLOWED_ORIGIN="*"
    )
    monkeypatch.setattr(recommend_app, "runtime", Runtime(parts=recommend_app.runtime.parts))
    # no backoff here: it delays the recovery by design (tests/unit/test_store.py covers it)
    monkeypatch.setattr(store, "FAILED_LOAD_BACKOFF_S", 0.0)
    status, body, headers = call(recommend_app, lambda_context, "model")
    assert status == 503
    # the answer came because every S3 call is bounded (a black hole would otherwise hold the request
    # until Lambda's timeout): attempts of at most 1 s to connect and 1 s of silence while reading,
    # all within the load's deadline
    client = recommend_app.runtime.store.reader.client  # type: ignore[attr-defined]
    assert (client.timeout, client.attempts) == (1.0, store.S3_ATTEMPTS)
    assert headers["Access-Control-Allow-Origin"] == "*" and "Retry-After" in headers
    if hole is not None:
        hole.close()
        return
    # WHEN S3 answers again on the same address THEN the next request is a 200, without a restart
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        import boto3

        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}").create_bucket(Bucket="down")
        assert data.train(checkerboard_dir, "s3://down/recommender") == 0
        status, body, _ = call(recommend_app, lambda_context, "model")
        assert status == 200, body
    finally:
        server.stop()
