"""``python -m training``: read ratings, clean, train, evaluate, publish.

Exit codes: 0 published (or already current), 2 bad arguments or data, 3 publishing refused.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import recsys
from recsys.parts import PARTS, SCHEMA_VERSION
from recsys.uri import ModelUri
from training import ease, foldin
from training import model as lfm
from training.cleaning import Interactions, clean
from training.datasets import DataError, read_ratings, resolve_source
from training.evaluate import evaluate, popularity_scorer
from training.publish import Published, PublishError, publish, writer_for
from training.report import render
from training.split import SPLITS, auto_split, make_split, to_matrix


def parser() -> argparse.ArgumentParser:
    d = lfm.TrainParams()
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    p.add_argument("--ratings", required=True, help="folder/file, s3://bucket/key, or ml-100k, ml-1m, ml-10m, ...")
    p.add_argument("--model-uri", required=True, help="s3://bucket/prefix or a local folder to publish into")
    data = p.add_argument_group("data")
    data.add_argument("--min-rating", type=float, default=d.min_rating, help="ratings >= this are positives (4.0)")
    data.add_argument("--max-bad-rows", type=_fraction, default=0.01, help="stop above this fraction of bad rows")
    data.add_argument("--data-cache", type=Path, default=Path.home() / ".cache" / "movielens")
    m = p.add_argument_group("model")
    m.add_argument("--loss", choices=("warp", "bpr", "warp-kos", "logistic"), default=d.loss)
    m.add_argument("--components", type=_positive, default=d.components)
    m.add_argument(
        "--epochs",
        type=_positive,
        default=d.epochs,
        help="at most this many (early stopping); default: 80, fewer on large data, from an update "
        f"budget of {lfm.UPDATE_BUDGET:,} positive pairs per fit (at least {lfm.MIN_AUTO_EPOCHS})",
    )
    m.add_argument("--learning-rate", type=float, default=d.learning_rate)
    m.add_argument("--item-alpha", type=float, default=d.item_alpha)
    m.add_argument("--max-sampled", type=_positive, default=d.max_sampled)
    m.add_argument("--item-features", choices=lfm.ITEM_FEATURES, default=d.item_features)
    m.add_argument("--threads", type=_positive, default=os.cpu_count() or 1)
    m.add_argument("--seed", type=int, default=d.seed)
    m.add_argument("--patience", type=_positive, default=d.patience, help="epochs without progress before stopping")
    m.add_argument("--min-epochs", type=_positive, default=d.min_epochs,
                   help="never stop before this many epochs (default: 3/4 of --epochs)")  # fmt: skip
    m.add_argument("--no-early-stopping", dest="early_stopping", action="store_false")
    e = p.add_argument_group("evaluation and publishing")
    e.add_argument("--split", choices=("auto", *SPLITS), default=d.split,
                   help="per-user: each user's latest likes held out; global: one time cut for everybody; "
                   "auto: per-user where the ratings span under two years, else global")  # fmt: skip
    e.add_argument(
        "--ease",
        dest="ease",
        action="store_const",
        const="on",
        default=d.ease,
        help=f"score the EASE baseline even above {ease.AUTO_MAX_ITEMS:,} movies (default: up to that)",
    )
    e.add_argument("--no-ease", dest="ease", action="store_const", const="off", help="skip the EASE baseline")
    e.add_argument("--eval-users", type=_positive, default=20000, help="evaluate a sample of this many users")
    e.add_argument("--keep", type=_positive, help="keep only the N newest published versions")
    e.add_argument("--cache-dir", type=Path, help="reuse a model trained on the same data and settings")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PublishError as exc:
        print(f"error: publishing refused: {exc}", file=sys.stderr)
        return 3


def run(args: argparse.Namespace) -> int:
    try:
        uri = ModelUri.parse(args.model_uri)
    except ValueError as exc:
        raise DataError(f"--model-uri: {exc}") from exc
    writer = writer_for(uri)
    current, tag = writer.pointer()  # read first: the pointer is swung only if nobody else did since
    params = lfm.TrainParams(
        loss=args.loss, components=args.components, epochs=args.epochs, learning_rate=args.learning_rate,
        item_alpha=args.item_alpha, max_sampled=args.max_sampled, item_features=args.item_features,
        threads=args.threads, seed=args.seed, early_stopping=args.early_stopping, patience=args.patience,
        min_epochs=args.min_epochs,
        min_rating=args.min_rating, split=args.split, ease=args.ease,
    )  # fmt: skip

    clock = time.perf_counter()
    source = resolve_source(args.ratings, args.data_cache)
    raw = read_ratings(source)
    data = clean(raw, args.min_rating, args.max_bad_rows)
    ingest_s = time.perf_counter() - clock
    _report_cleaning(raw.bad_rows, data.summary, ingest_s)

    cache = _cache_folder(args.cache_dir, data, params, raw.movies)
    if cache is not None and (cache / "metrics.json").exists():
        files = {path.name: path.read_bytes() for path in sorted(cache.iterdir()) if path.is_file()}
        version = json.loads(files["metrics.json"])["version"]
        print(f"reusing model {version} trained on the same data and settings ({cache})")
        if current is not None and current.get("version") == version:
            print(f"{uri} already serves {version}; nothing to publish")
            return 0
    else:
        files = train_and_evaluate(args, data, raw.movies, params)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            for name, blob in files.items():
                (cache / name).write_bytes(blob)
    metrics = json.loads(files["metrics.json"])
    done = publish(
        writer, metrics["version"], {name: files[f"{name}.pkl"] for name in PARTS},
        {"metrics.json": files["metrics.json"], "report.html": files["report.html"]},
        expected_tag=tag, created_at=lfm.utc_now(), keep=args.keep, location=str(uri),
    )  # fmt: skip
    _report_published(done, metrics)
    return 0


def train_and_evaluate(
    args: argparse.Namespace, data: Interactions, movies: Any, params: lfm.TrainParams
) -> dict[str, bytes]:
    """Choose epochs (and EASE's λ) on a validation split, evaluate on the test split, then retrain
    on everything; the published files by name."""
    started = time.perf_counter()
    created = lfm.utc_now()
    cat = lfm.catalogue(data.item_ids, movies)
    features = lfm.item_features(params.item_features, cat)
    shape = (data.user_ids.size, data.item_ids.size)
    liked = data.positives(params.min_rating)
    progress = not args.quiet

    def matrix(rows: np.ndarray) -> Any:
        return to_matrix(data.users[rows], data.items[rows], shape)

    kind, chosen_by = auto_split(data.timestamps) if params.split == "auto" else (params.split, "--split")
    split = make_split(kind, data.users, data.timestamps, data.order, liked, params.test_fraction)
    # validation: the same protocol again, inside what the test split leaves for training
    period = np.flatnonzero(split.seen)
    val = make_split(kind, data.users[period], data.timestamps[period], data.order[period], liked[period],
                     params.validation_fraction)  # fmt: skip
    val_train, val_seen, val_test = matrix(period[val.train]), matrix(period[val.seen]), matrix(period[val.test])
    history: list[float] = []
    phases = Phases()
    if params.early_stopping:
        params = lfm.resolve_epochs(params, int(val_train.nnz))
        with phases("validation fit"):
            _, epochs, history = lfm.fit(
                params, val_train.tocoo(), features, params.epochs, (val_seen, val_test), "validate", progress
            )
        print(f"early stopping: best smoothed validation ndcg@10 after {epochs} of at most {params.epochs} epochs")
    else:
        params = lfm.resolve_epochs(params, int(split.train.sum()))
        epochs = params.epochs or 1
    train_m, seen_m, test_m = matrix(split.train), matrix(split.seen), matrix(split.test)
    with phases("evaluation fit and scores"):
        model, _, _ = lfm.fit(params, train_m.tocoo(), features, epochs, desc="evaluate", progress=progress)
        trained = lfm.lightfm_scorer(model, features)  # also the fold-in's trained-in yardstick
        sample = _sample_users(test_m, args.eval_users, params.seed)
        results = {
            "lightfm": evaluate(trained, seen_m, test_m, users=sample),
            "popularity": evaluate(popularity_scorer(train_m), seen_m, test_m, users=sample),
        }
    baseline: dict[str, Any]
    reason = ease.skipped(shape[1], params.ease)
    if reason is not None:
        baseline = {"skipped": reason}
        print(f"note: EASE baseline not scored: {reason}")
    else:
        with phases("EASE"):
            val_sample = _sample_users(val_test, args.eval_users, params.seed)
            lam, grid = ease.choose_lambda(val_train, val_seen, val_test, val_sample)
            weights = ease.weights(ease.gram(train_m), lam)
            results["ease"] = evaluate(ease.scorer(train_m, weights), seen_m, test_m, users=sample)
            baseline = {"lambda": lam, "validation_ndcg@10": grid}
            del weights
    with phases("fold-in fit and scores"):
        folded = foldin.evaluate_fold_in(params, features, epochs, train_m, seen_m, test_m, trained, progress)
    with phases("final fit"):
        final, _, _ = lfm.fit(params, matrix(liked).tocoo(), features, epochs, desc="final", progress=progress)
    train_s = time.perf_counter() - started

    fingerprint = data.fingerprint()
    version = f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"  # sortable by time; unique per run
    chosen = replace(params, epochs=epochs, split=kind)
    split_info = {
        "name": split.name,
        "description": split.description,
        "chosen_by": chosen_by,
        "evaluated_users": results["lightfm"]["users"],
        "seen_masked": "every movie the user rated, at any rating, up to their last training-side like",
        **split.detail,
    }
    metrics: dict[str, Any] = {
        "version": version,
        "split": split_info,
        "k": 10,
        "models": {name: {k: v for k, v in r.items() if k != "curves"} for name, r in results.items()},
        "curves": {"k": list(range(1, 21)), **{name: r["curves"] for name, r in results.items()}},
        "ease": baseline,
        "fold_in": folded.report,
        "data": {**data.summary, "fingerprint": fingerprint, "train_positives": int(train_m.nnz),
                 "seen_ratings": int(seen_m.nnz), "test_positives": int(test_m.nnz)},
        "params": {**lfm.params_dict(chosen), "max_epochs": params.epochs, "validation_history": history},
        "training_seconds": round(train_s, 2),
        "seconds_by_phase": phases.seconds,
        "created_at": created.isoformat().replace("+00:00", "Z"),
    }  # fmt: skip
    provenance = json.loads(json.dumps({  # plain JSON types only: the serving unpickler admits no numpy scalar
        "version": version,
        "created_at": metrics["created_at"],
        "params": metrics["params"],
        "data": metrics["data"],
        "metrics": {key: metrics[key] for key in ("split", "k", "models", "curves", "ease", "fold_in")},
        "libraries": lfm.library_versions(),
    }))  # fmt: skip
    with phases("artifact"):
        artifact = lfm.build_artifact(final, features, data, cat, provenance, fold_in_lambda=folded.lam)
    parts = artifact.to_parts()
    metrics["artifact_bytes"] = sum(len(blob) for blob in parts.values())
    metrics["part_bytes"] = {name: len(blob) for name, blob in parts.items()}
    return {
        **{f"{name}.pkl": blob for name, blob in parts.items()},
        "metrics.json": json.dumps(metrics, indent=2).encode(),
        "report.html": render(metrics),
    }


class Phases:
    """Times named phases of a run; each is printed as it ends and kept in `seconds`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 1)
        print(f"{name}: {self.seconds[name]:.1f} s", flush=True)


def _sample_users(test: Any, limit: int, seed: int) -> np.ndarray | None:
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    if users.size <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(users, size=limit, replace=False))


def _cache_folder(root: Path | None, data: Interactions, params: lfm.TrainParams, movies: Any) -> Path | None:
    """Where a model trained on exactly this data, metadata, settings and code is cached."""
    if root is None:
        return None
    # The artifact's schema, the code and the titles too: a model (its metrics, its titles) cached
    # by older code or from other metadata must not be served as if this run had made it.
    identity = (
        f"{data.fingerprint()}{replace(params, threads=0)!r}schema={SCHEMA_VERSION}"
        f"code={code_fingerprint()}movies={movies_fingerprint(movies)}"
    )
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return root / key


def code_fingerprint() -> str:
    """sha256 of the training job's and the serving package's source, which make what is cached."""
    h = hashlib.sha256()
    for folder in (Path(__file__).parent, Path(recsys.__file__).parent):
        for path in sorted(folder.glob("*.py")):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def movies_fingerprint(movies: Any) -> str:
    """sha256 of the movie metadata (ids, titles, years, genres), or "none"."""
    if movies is None:
        return "none"
    fields = (
        movies.ids.tolist(),
        list(movies.titles),
        np.asarray(movies.years).tolist(),
        [list(g) for g in movies.genres],
    )
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def _report_cleaning(bad: list[Any], summary: dict[str, Any], seconds: float) -> None:
    print(
        f"read {summary['rows']:,} rows from {summary['source']} ({summary['format']}) in {seconds:.1f} s: "
        f"{summary['users']:,} users, {summary['movies']:,} movies, {summary['ratings']:,} ratings, "
        f"{summary['positives']:,} positives (>= {summary['min_rating']:g}); dropped {summary['bad_rows']:,} bad rows "
        f"and {summary['duplicates']:,} duplicates"
    )
    for row in bad:
        print(f"  bad line {row.line}: {row.reason}: {row.text!r}")


def _report_published(done: Published, metrics: dict[str, Any]) -> None:
    sizes = ", ".join(f"{name} {entry['size'] / 1e6:.1f}" for name, entry in done.parts.items())
    print(f"published {done.version} to {done.location} ({done.size / 1e6:.1f} MB in parts: {sizes} MB)")
    print(f"  {metrics['split']['name']} split, {metrics['split']['evaluated_users']:,} users, seen movies masked:")
    for name, m in metrics["models"].items():
        print(f"  {name:<11} precision@10 {m['precision@10']:.4f}  ndcg@10 {m['ndcg@10']:.4f}")
    folded = metrics["fold_in"]
    print(f"  fold-in of {folded['users']} users left out of a separate fit (ridge λ {folded['lambda']:g}):")
    for name, m in folded["models"].items():
        print(f"  {name:<11} precision@10 {m['precision@10']:.4f}  ndcg@10 {m['ndcg@10']:.4f}")
    if done.pruned:
        print(f"  pruned {len(done.pruned)} old versions: {', '.join(done.pruned)}")


def _fraction(raw: str) -> float:
    value = float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1] (or a percentage), got {raw!r}")
    return value


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {raw!r}")
    return value
