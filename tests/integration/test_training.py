from __future__ import annotations

import dataclasses
import datetime as dt
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from recsys.config import Settings
from recsys.store import LocalReader, ModelStore
from recsys.uri import ModelUri
from tests import data
from training import itemitem, replay, sequence
from training import model as lfm
from training.cleaning import clean
from training.datasets import read_ratings
from training.publish import PublishError, S3Writer, publish
from training.split import to_matrix

pytestmark = pytest.mark.integration


def test_checkerboard_model_recommends_the_unseen_movie_of_the_users_group(model_store: Path) -> None:
    # GIVEN the real job trained on data where each user has one unseen movie of their own group
    _, model = data.published(model_store)
    for user_id in (1, 7, 21, 33):
        u = model.user_index(user_id)
        items, _ = model.recommend(u, 1)
        # THEN that movie (a catalogue index mapped back to its id) comes first
        expected = data.group_of_user(user_id) * data.ITEMS_PER_GROUP + (user_id % data.ITEMS_PER_GROUP) + 1
        assert int(model.item_ids[items[0]]) == expected


def test_metrics_and_report_are_published(model_store: Path) -> None:
    pointer, model = data.published(model_store)
    metrics = json.loads((model_store / f"models/{pointer['version']}/metrics.json").read_text())
    assert metrics["split"]["name"] == "per_user_latest_likes" and metrics["k"] == 10
    assert metrics["split"]["evaluated_users"] == metrics["models"]["lightfm"]["users"] > 0
    names = {"precision@10", "recall@10", "ndcg@10", "map@10", "mrr", "auc", "coverage@10"}
    assert all(names <= set(metrics["models"][m]) for m in ("served", "lightfm", "item_item", "popularity", "ease"))
    assert f"{metrics['ease']['lambda']:g}" in metrics["ease"]["validation_ndcg@10"]
    blend = metrics["served"]
    assert blend["components"] == ["lightfm", "item_item"] and sum(blend["shares"].values()) == pytest.approx(1)
    chosen = blend["item_item"]
    assert itemitem.label(chosen["a"], chosen["lambda"]) in blend["validation_ndcg@10"]["a_lambda"]
    assert f"{chosen['recency_decay'] or 'none'}" in blend["validation_ndcg@10"]["recency_decay"]
    np.testing.assert_allclose(model.item_item_recency, sequence.recency(chosen["recency_decay"]))
    # what each piece buys, on the same split: order ignored (a = 1, every like alike) beside the rest
    assert "item_item_unordered" in metrics["models"] and blend["order_ignored"]["a"] == 1.0
    assert f"{blend['shares']['lightfm']:g}" in blend["validation_ndcg@10"]["lightfm_share"]
    np.testing.assert_allclose(model.blend_shares, [blend["shares"]["lightfm"], blend["shares"]["item_item"]])
    visitors = blend["visitor_shares"]
    np.testing.assert_allclose(model.visitor_shares, [visitors["lightfm"], visitors["item_item"]])
    assert model.item_item_weights.size == blend["item_item"]["weights"]
    folded = metrics["fold_in"]
    assert set(folded["models"]) == {"fold_in", "trained_in", "fold_in_lightfm", "trained_in_lightfm", "popularity"}
    assert folded["users"] > 0 and folded["visitor_shares"] == visitors
    assert f"{visitors['lightfm']:g}" in folded["visitor_share_chosen_on"]["ndcg@10"]
    assert folded["method"] and "fold-in" in (model_store / f"models/{pointer['version']}/report.html").read_text()
    assert metrics["models"]["lightfm"]["ndcg@10"] > metrics["models"]["popularity"]["ndcg@10"]
    # the replay of each held-out like as it arrives, on the same split, served by the model and on its card
    replayed = metrics["replay"]
    assert replayed["arrivals"] == metrics["data"]["test_positives"] and replayed["users"] > 0
    assert {"hr@10", "ndcg@10"} == set(replayed["static"]) == set(replayed["realtime"])
    assert model.provenance["metrics"]["replay"] == replayed
    # LightFM's refold of a known user's new likes: its weight chosen on the validation replay, served
    refold = replayed["refold"]
    grid = {float(w): m["ndcg@10"] for w, m in refold["validation"].items()}
    assert set(grid) == set(replay.FOLD_IN_WEIGHTS) and refold["chosen_on"].startswith("validation")
    assert grid[refold["weight"]] == max(grid.values()) and model.refold_weight == refold["weight"]
    assert {"static", "refolded"} == set(refold["lightfm_alone"])
    assert "Likes served as they happen" in (model_store / f"models/{pointer['version']}/report.html").read_text()
    assert b"<img" in (model_store / f"models/{pointer['version']}/report.html").read_bytes()
    assert model.provenance["data"]["fingerprint"] == metrics["data"]["fingerprint"]


@pytest.mark.parametrize("kind", ["none", "genres+decade"])
def test_artifact_ranks_exactly_like_lightfm_predict(checkerboard_dir: Path, kind: str) -> None:
    data_ = clean(read_ratings(checkerboard_dir), 4.0, 0.01)
    params = lfm.TrainParams(components=8, item_features=kind, threads=1)
    cat = lfm.catalogue(data_.item_ids, read_ratings(checkerboard_dir).movies)
    features = lfm.item_features(kind, cat)
    pos = data_.positives(4.0)
    m = to_matrix(data_.users[pos], data_.items[pos], (data_.user_ids.size, data_.item_ids.size))
    model, _, _ = lfm.fit(params, m.tocoo(), features, 5, progress=False)
    prov = {"version": "t", "params": {"min_rating": 4.0}}
    artifact = lfm.build_artifact(model, features, data_, cat, prov, itemitem.fit(m, (10.0,))[10.0], 1.0)
    items = np.arange(data_.item_ids.size, dtype=np.int32)
    for u in range(data_.user_ids.size):
        expected = model.predict(np.full(items.size, u, dtype=np.int32), items, item_features=features)
        ours = artifact.score_user(u)
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
        assert np.argsort(-ours, kind="stable").tolist() == np.argsort(-expected, kind="stable").tolist()


def test_bad_rows_above_threshold_publish_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ratings.dat").write_text("1::1::5::1\n1::2::5::2\nbroken\n")
    store = tmp_path / "store"
    assert data.train(tmp_path, str(store)) == 2
    assert "line 3" in capsys.readouterr().err
    assert not (store / "latest.json").exists()


def test_publish_to_moto_server_and_refuse_a_racing_publisher(s3, checkerboard_dir: Path) -> None:  # type: ignore[no-untyped-def]
    uri = f"s3://{s3.bucket}/recommender"
    # GIVEN a model published through the real job
    assert data.train(checkerboard_dir, uri) == 0
    writer = S3Writer(ModelUri.parse(uri), s3)
    first, tag = writer.pointer()
    # WHEN two publishers both started from that pointer
    now = dt.datetime.now(dt.UTC)
    publish(writer, "v-winner", {"catalog": b"model-a"}, {}, expected_tag=tag, created_at=now)
    with pytest.raises(PublishError, match="another publisher"):
        publish(writer, "v-loser", {"catalog": b"model-b"}, {}, expected_tag=tag, created_at=now)
    # THEN the pointer names the winner and the loser left no files
    current, _ = writer.pointer()
    assert current["version"] == "v-winner" and first["version"] != "v-winner"
    assert "v-loser" not in writer.versions()


def test_publisher_killed_before_pointer_leaves_old_model_serving(s3, checkerboard_dir: Path) -> None:  # type: ignore[no-untyped-def]
    uri = f"s3://{s3.bucket}/recommender"
    assert data.train(checkerboard_dir, uri) == 0
    store = ModelStore(Settings(ModelUri.parse(uri)))
    store._reader = None
    old = store.get().version
    # GIVEN a model file uploaded whose pointer write never happened
    writer = S3Writer(ModelUri.parse(uri), s3)
    writer.put_new("models/zzz-orphan/catalog.pkl", pickle.dumps("half-published"))
    # THEN a new container still loads the old model
    assert ModelStore(Settings(ModelUri.parse(uri))).get().version == old


def test_keep_prunes_old_versions_but_not_the_current(tmp_path: Path, checkerboard_dir: Path) -> None:
    store = tmp_path / "store"
    for _ in range(3):
        assert data.train(checkerboard_dir, str(store), "--keep", "2") == 0
    versions = sorted(p.name for p in (store / "models").iterdir())
    pointer = json.loads((store / "latest.json").read_text())
    assert len(versions) == 2 and pointer["version"] in versions
    assert LocalReader(ModelUri.parse(str(store))).read("latest.json")


def test_first_publish_under_the_publisher_policy_treats_a_403_pointer_as_absent(tmp_path: Path) -> None:
    # moto does not enforce IAM, so S3's behaviour under ModelPublisherPolicy is stubbed here: a
    # GET of the missing latest.json is denied (ListBucket is granted only with an s3:prefix
    # condition, which a GET lacks), while a listing of that exact prefix is allowed and empty.
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1")
    writer = S3Writer(ModelUri.parse("s3://models/recommender"), client)
    with Stubber(client) as stub:
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        stub.add_response(
            "list_objects_v2", {"KeyCount": 0}, {"Bucket": "models", "Prefix": "recommender/latest.json", "MaxKeys": 1}
        )
        assert writer.pointer() == (None, None)
        # AND a denial for a pointer that does exist is an error, not "no model yet"
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
        stub.add_response("list_objects_v2", {"KeyCount": 1, "Contents": [{"Key": "recommender/latest.json"}]},
                          {"Bucket": "models", "Prefix": "recommender/latest.json", "MaxKeys": 1})  # fmt: skip
        with pytest.raises(PublishError, match="AccessDenied"):
            writer.pointer()


def test_the_model_cache_key_follows_the_code_and_the_titles(
    tmp_path: Path, checkerboard_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import pipeline

    raw = read_ratings(checkerboard_dir)
    clean_data, params = clean(raw, 4.0, 0.01), lfm.TrainParams()
    key = pipeline.cache_folder(tmp_path, clean_data, params, raw.movies)
    assert pipeline.cache_folder(tmp_path, clean_data, params, raw.movies) == key  # stable
    # WHEN a title changes THEN a cached model (with the old titles in it) is not reused
    renamed = dataclasses.replace(raw.movies, titles=[*raw.movies.titles[:-1], "Renamed (1999)"])
    assert pipeline.cache_folder(tmp_path, clean_data, params, renamed) != key
    # WHEN the training or serving code changes THEN neither is it
    assert len(pipeline.code_fingerprint()) == 64
    monkeypatch.setattr(pipeline, "code_fingerprint", lambda: "other code")
    assert pipeline.cache_folder(tmp_path, clean_data, params, raw.movies) != key


def test_the_blend_is_chosen_on_validation_and_never_sees_the_test_split(
    checkerboard_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the real pipeline, with what it hands the item-item fits and the choosers recorded
    from training import foldin, itemitem, pipeline

    splits, fitted, chosen, visitors, folded_in, grown, sequences = [], [], [], [], [], [], []
    real_split, real_gram, real_grow = pipeline.make_split, itemitem.gram, itemitem.grow_gram
    real_setting, real_decay, real_share = itemitem.choose_setting, itemitem.choose_decay, itemitem.choose_share
    real_grams = sequence.grams

    def grams(users: object, items: object, *args: object, **kwargs: object) -> object:
        sequences.append(set(zip(users.tolist(), items.tolist(), strict=True)))  # type: ignore[attr-defined]
        return real_grams(users, items, *args, **kwargs)  # type: ignore[arg-type]

    def split(*args: object, **kwargs: object) -> object:
        splits.append(real_split(*args, **kwargs))  # type: ignore[arg-type]
        return splits[-1]

    def gram(x: object, *args: object, **kwargs: object) -> object:
        fitted.append(x)
        return real_gram(x, *args, **kwargs)  # type: ignore[arg-type]

    def grow_gram(g: object, x: object, more: object, *args: object, **kwargs: object) -> object:
        fitted.append(x + more)  # type: ignore[operator]
        grown.append(real_grow(g, x, more, *args, **kwargs))  # type: ignore[arg-type]
        return grown[-1]

    def recorder(likes_at: object) -> object:
        def recorded(recency: object) -> object:
            chosen.append(likes_at(recency))  # type: ignore[operator]
            return chosen[-1]

        return recorded

    def choose_setting(
        models: object, likes_at: object, decays: object, seen: object, relevant: object, users: object
    ) -> object:
        chosen.extend([seen, relevant])
        return real_setting(models, recorder(likes_at), decays, seen, relevant, users)  # type: ignore[arg-type]

    def choose_decay(
        model: object, likes_at: object, decays: object, seen: object, relevant: object, users: object,
        **kwargs: object,
    ) -> object:  # fmt: skip
        return real_decay(model, recorder(likes_at), decays, seen, relevant, users, **kwargs)  # type: ignore[arg-type]

    shares_chosen: list[object] = []

    def choose_share(lightfm: object, item_item: object, seen: object, relevant: object, users: object) -> object:
        shares_chosen.append(users)
        if len(shares_chosen) == 1:  # the first, after (a, λ) and the decay: on validation
            chosen.extend([seen, relevant])
        else:  # the second: for visitors, on users left out of the fold-in's fit
            visitors.append(set(users.tolist()))  # type: ignore[attr-defined]
        return real_share(lightfm, item_item, seen, relevant, users)  # type: ignore[arg-type]

    def evaluate(score: object, seen: object, relevant: object, users: object = None, **kwargs: object) -> object:
        folded_in.append(set(users.tolist()))  # type: ignore[attr-defined]
        return real_evaluate(score, seen, relevant, users=users, **kwargs)  # type: ignore[arg-type]

    real_evaluate = foldin.evaluate
    monkeypatch.setattr(foldin, "evaluate", evaluate)

    monkeypatch.setattr(pipeline, "make_split", split)
    monkeypatch.setattr(itemitem, "gram", gram)
    monkeypatch.setattr(itemitem, "grow_gram", grow_gram)
    monkeypatch.setattr(itemitem, "choose_setting", choose_setting)
    monkeypatch.setattr(itemitem, "choose_decay", choose_decay)
    monkeypatch.setattr(sequence, "grams", grams)
    monkeypatch.setattr(itemitem, "choose_share", choose_share)
    raw = read_ratings(checkerboard_dir)
    data_ = clean(raw, 4.0, 0.01)
    params = lfm.TrainParams(components=8, epochs=5, threads=1, early_stopping=False)
    # WHEN it trains
    pipeline.train_and_evaluate(data_, raw.movies, params, progress=False)
    # THEN the first split is the test split; every like it holds out is absent from what chose (a, λ),
    # the recency decay and the shares, from the likes of every Gram matrix an item-item model was
    # fitted on but the final one, and from every sequence the transitions were learned from but the final one
    test = splits[0].test
    held_out = set(zip(data_.users[test].tolist(), data_.items[test].tolist(), strict=True))
    # (every decay scored with every (a, λ) of this small catalogue, so none again after)
    assert held_out and len(chosen) == 4 + len(itemitem.DECAYS) and len(visitors) == 1
    assert sequences and all(not held_out & likes for likes in sequences[:-1] or sequences)
    if len(sequences) > 1:  # the order was learned from (a < 1): the final fit's sequences hold every like
        assert held_out <= sequences[-1]
    assert len(fitted) == 4  # validation, the training side grown from it, the fold-in's users, everything
    for matrix in [fitted[0], fitted[1], *chosen]:
        coo = matrix.tocoo()  # type: ignore[attr-defined]
        assert not held_out & set(zip(coo.row.tolist(), coo.col.tolist(), strict=True))
    # and the visitors' share is chosen on users the fold-in figures never report (those it scores
    # are either the choosers of its ridge λ and this share, or the reported ones)
    reported = [users for users in folded_in if users != visitors[0]]
    assert reported and all(users.isdisjoint(visitors[0]) for users in reported)
    # and the control: the evaluation fit does hold the training side, the final fit everything
    final = fitted[-1].tocoo()  # type: ignore[attr-defined]
    assert held_out <= set(zip(final.row.tolist(), final.col.tolist(), strict=True))
    # and the final Gram matrix, grown from the one the fold-in borrowed, is exactly that of every like
    assert np.array_equal(grown[-1], real_gram(fitted[-1]))


def test_evaluation_scores_a_users_item_item_side_as_serving_does(checkerboard_dir: Path, model_store: Path) -> None:
    # GIVEN the published model, and the ratings it was trained on (all of them: the final fit)
    _, model = data.published(model_store)
    raw = read_ratings(checkerboard_dir)
    data_ = clean(raw, 4.0, 0.01)
    liked = data_.positives(4.0)
    shape = (data_.user_ids.size, data_.item_ids.size)
    # WHEN training's scorer reads each user's newest likes, weighted by the served recency
    likes = itemitem.recent_likes(data_.users[liked], data_.items[liked], data_.timestamps[liked],
                                  data_.order[liked], shape, recency=model.item_item_recency)  # fmt: skip
    weights = itemitem.ItemItem(model.item_item_indptr, model.item_item_targets, model.item_item_weights,
                                model.item_item_scales, 0.0, "served", 0)  # fmt: skip
    evaluated = itemitem.scorer(likes, weights)(np.arange(shape[0]))
    # THEN every user's item-item scores are those serving computes from their history, newest first
    for user_id in (1, 7, 21, 33):
        u = model.user_index(user_id)
        served = model.item_item_scores(model.newest_likes(u), np.array([0.5, 0.5], np.float32))
        np.testing.assert_allclose(evaluated[int(np.searchsorted(data_.user_ids, user_id))], served, rtol=1e-5,
                                   atol=1e-6)  # fmt: skip
