"""``python -m training``: read ratings, clean, train, evaluate, publish.

Exit codes: 0 published (or already current), 2 bad arguments or data, 3 another run published
first (a race on the pointer), 4 the current model kept by the quality gate (`training.gate`), 5
nothing published for any other reason (the store refused a write, the gate could not read the
serving model's metrics).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from recsys.events import all_events
from recsys.feedback import live_likes
from recsys.parts import PARTS, model_key
from recsys.uri import ModelUri
from training import ease, events, gate, online, pipeline, visitors
from training import model as lfm
from training.cleaning import clean
from training.datasets import DataError, RawRatings, read_ratings, resolve_source
from training.publish import LostRaceError, Published, PublishError, Writer, publish, writer_for
from training.report import render
from training.split import SPLITS


def parser() -> argparse.ArgumentParser:
    d = lfm.TrainParams()
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__.splitlines()[0])
    p.add_argument("--ratings", required=True, help="folder/file, s3://bucket/key, or ml-100k, ml-1m, ml-10m, ...")
    p.add_argument("--model-uri", required=True, help="s3://bucket/prefix or a local folder to publish into")
    data = p.add_argument_group("data")
    data.add_argument("--min-rating", type=float, default=d.min_rating, help="ratings >= this are positives (4.0)")
    data.add_argument("--max-bad-rows", type=_fraction, default=0.01, help="stop above this fraction of bad rows")
    data.add_argument("--data-cache", type=Path, default=Path.home() / ".cache" / "movielens")
    data.add_argument("--feedback-table", help="DynamoDB table of the site's likes (the stack's FeedbackTable): "
                      "its visitors train as users, and are served no history")  # fmt: skip
    data.add_argument("--events-table", help="DynamoDB table of the site's users' events (the stack's EventsTable): "
                      "each becomes that user's own rating; a forgotten user's ratings are left out")  # fmt: skip
    data.add_argument("--like-cap", type=_positive, default=500, help="drop a visitor with more likes (the API's cap)")
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
    e.add_argument("--max-drop", type=_fraction, default=0.05,
                   help="keep the serving model when the new one's clean validation ndcg@10 figures are more than "
                   "this fraction (or percentage) below its own (default 5%%)")  # fmt: skip
    e.add_argument("--visitor-band", type=_fraction, default=gate.BAND,
                   help="publish the model without visitors when their likes move a validation figure by more "
                   "than this fraction, either way (default 5%%)")  # fmt: skip
    e.add_argument("--cache-dir", type=Path, help="reuse a model trained on the same data and settings")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None, summary: dict[str, Any] | None = None) -> int:
    """`python -m training`: the exit code (0 published or current, 2 bad data, 3 lost race, 4 kept,
    5 nothing published). `summary`, when given, is filled with what the run read and made, as
    far as it got (`run`), for TrainFunction's metrics."""
    args = parser().parse_args(argv)
    try:
        return run(args, {} if summary is None else summary)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LostRaceError as exc:
        print(f"error: publishing refused: {exc}", file=sys.stderr)
        return 3
    except (PublishError, gate.GateError) as exc:
        print(f"error: nothing published: {exc}", file=sys.stderr)
        return 5


def run(args: argparse.Namespace, summary: dict[str, Any]) -> int:
    """Train, evaluate, gate and publish; `summary` gets ``ratings_read``, ``events_read``,
    ``visitor_likes_read``, ``visitors`` and ``dropped`` (by reason) as they are read, and
    ``version`` and ``served_ndcg@10`` of the model the gate decided on (published or kept)."""
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

    source = resolve_source(args.ratings, args.data_cache)
    raw = read_ratings(source)
    summary["ratings_read"] = int(raw.users.size)
    from_events = None
    if args.events_table:
        raw, from_events = _merge_events(raw, args.events_table)
        summary["events_read"] = int(from_events["events"])
    runs: dict[str, tuple[RawRatings, dict[str, Any] | None]] = {"clean": (raw, None)}
    screened, seen_online = None, None
    if args.feedback_table:
        screened, seen_online = _screen_visitors(raw, args.feedback_table, args.like_cap, args.min_rating)
        screening = screened.report()
        summary.update(visitor_likes_read=screening["likes_read"], visitors=screening["visitors"],
                       dropped=screening["dropped"], online=seen_online)  # fmt: skip
    if screened is not None and screened.likes:
        merged, first = visitors.add_to_ratings(raw, screened)
        report = screened.report()
        runs["with_visitors"] = (merged, {"first_user_id": first, **report})
        # the clean run is published only when the gate leaves the visitors out: its model says so
        left_out = {"visitors": report["visitors"], "likes": report["likes"]}
        runs["clean"] = (raw, {"first_user_id": None, "visitors": 0, "likes": 0, "left_out": left_out})
    trained = {name: _train(args, params, current, uri, *run, seen_online) for name, run in runs.items()}
    if any(files is None for files in trained.values()):
        return 0  # the serving model is this very one
    results = {name: json.loads(files["metrics.json"]) for name, files in trained.items() if files is not None}
    serving = _metrics_of(writer, current) if current is not None else None
    decision = gate.decide(results["clean"], results.get("with_visitors"), serving, args.max_drop, args.visitor_band)
    decided = results[decision.run or "clean"]
    summary.update({"version": decided["version"], "served_ndcg@10": decided["models"]["served"]["ndcg@10"]})
    if screened is not None:
        decision.report.setdefault("visitors", {"included": False, "why": "no visitors' likes passed screening"})
        decision.report["visitors"]["screened"] = screened.report()
    if decision.run is None:
        print(f"kept {current['version'] if current else None}: the new model {results['clean']['version']} is not "
              f"published: {decision.reason}", file=sys.stderr)  # fmt: skip
        return 4
    files, metrics = trained[decision.run], results[decision.run]
    assert files is not None
    metrics["gate"] = {**metrics["gate"], **decision.report}
    if from_events is not None:
        metrics["data"]["events"] = from_events
    files = {**files, "metrics.json": json.dumps(metrics, indent=2).encode(), "report.html": render(metrics)}
    print(decision.reason, file=sys.stderr if decision.run == "clean" and screened is not None else sys.stdout)
    done = publish(
        writer, metrics["version"], {name: files[f"{name}.pkl"] for name in PARTS},
        {"metrics.json": files["metrics.json"], "report.html": files["report.html"]},
        expected_tag=tag, created_at=lfm.utc_now(), keep=args.keep, location=str(uri),
    )  # fmt: skip
    _report_published(done, metrics)
    return 0


def _train(args: argparse.Namespace, params: lfm.TrainParams, current: dict[str, Any] | None, uri: ModelUri,
           raw: RawRatings, from_visitors: dict[str, Any] | None,
           seen_online: dict[str, Any] | None) -> dict[str, bytes] | None:  # fmt: skip
    """Clean `raw`, then train and evaluate (or reuse the cached run of the same data and settings):
    the files to publish, whose metrics carry `seen_online` (`training.online`); None when the
    serving model is the cached one."""
    clock = time.perf_counter()
    data = clean(raw, args.min_rating, args.max_bad_rows)
    _report_cleaning(raw.bad_rows, data.summary, time.perf_counter() - clock)
    cache = pipeline.cache_folder(args.cache_dir, data, params, raw.movies)
    if cache is not None and (cache / "metrics.json").exists():
        files = {path.name: path.read_bytes() for path in sorted(cache.iterdir()) if path.is_file()}
        version = json.loads(files["metrics.json"])["version"]
        print(f"reusing model {version} trained on the same data and settings ({cache})")
        if current is not None and current.get("version") == version:
            print(f"{uri} already serves {version}; nothing to publish")
            return None
        return files
    files = pipeline.train_and_evaluate(data, raw.movies, params, args.eval_users, not args.quiet, from_visitors,
                                        seen_online)  # fmt: skip
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        for name, blob in files.items():
            (cache / name).write_bytes(blob)
    return files


def _screen_visitors(raw: RawRatings, table: str, like_cap: int,
                     min_rating: float) -> tuple[visitors.Screened, dict[str, Any]]:  # fmt: skip
    """The live likes of the feedback `table`'s visitors, read a page at a time and screened
    (`training.visitors`), and from the same scan, the like-through rates of the picks the site
    showed them (`training.online`)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    movies, likes = visitors.base_likes(raw, min_rating)
    tally = online.Tally()
    try:
        scan = tally.watch(live_likes(boto3.client("dynamodb"), table, time.time()))
        screened = visitors.screen(scan, movies, like_cap, likes)
    except (BotoCoreError, ClientError) as exc:
        raise DataError(f"--feedback-table {table}: cannot read the visitors' likes: {exc}") from exc
    report = screened.report()
    print(f"visitors: {report['visitors']:,} with {report['likes']:,} likes pass screening "
          f"(read {report['likes_read']:,} live likes{', the scan cut at its budget' if screened.scan_cut else ''}; "
          f"left out: {report['dropped']})")  # fmt: skip
    seen = tally.report(dropped=[*screened.over_cap, *screened.too_fast])
    for row in seen["versions"][:2]:
        print(f"online: model {row['model_version']}: {row['liked']:,} of {row['picks']:,} picks shown were liked "
              f"({row['like_through']:.2%}, 95% {_interval(row['ci95'])}) by {row['visitors']:,} visitors")  # fmt: skip
    return screened, seen


def _merge_events(raw: RawRatings, table: str) -> tuple[RawRatings, dict[str, Any]]:
    """The ratings with the events `table`'s users' events merged (`training.events`)."""
    from recsys import dynamodb

    try:
        merged = events.merge(raw, all_events(dynamodb.client(), table, time.time()))
    except Exception as exc:
        if not isinstance(exc, dynamodb.DynamoDBError) and not type(exc).__module__.startswith("botocore."):
            raise
        raise DataError(f"--events-table {table}: cannot read the users' events: {exc}") from exc
    r = merged.report
    print(f"events: {r['events']:,} of {r['users']:,} users merged into the ratings ({r['new_users']:,} new users); "
          f"{r['forgotten_users']:,} forgotten users, {r['ratings_forgotten']:,} of their ratings left out; "
          f"dropped: {r['dropped']}")  # fmt: skip
    return merged.raw, r


def _metrics_of(writer: Writer, pointer: dict[str, Any]) -> dict[str, Any]:
    """The metrics.json of the model `pointer` names; GateError when it cannot be read (fail closed)."""
    key = model_key(str(pointer.get("version")), "metrics.json")
    try:
        raw = writer.read(key)
        loaded = None if raw is None else json.loads(raw)
    except (PublishError, ValueError) as exc:
        raise gate.GateError(f"the serving model's {key} cannot be read ({exc}); nothing is published") from exc
    if not isinstance(loaded, dict):
        raise gate.GateError(f"the serving model's {key} is missing; nothing is published")
    return loaded


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
    blend = metrics["served"]
    shares, item_item = blend["shares"], blend["item_item"]
    print(f"  served = {shares['lightfm']:g} lightfm + {shares['item_item']:g} item_item "
          f"(λ {item_item['lambda']:g}, {item_item['weights']:,} weights), chosen on validation")  # fmt: skip
    folded = metrics["fold_in"]
    visitors = blend["visitor_shares"]
    print(f"  fold-in of {folded['users']} users left out of a separate fit (ridge λ {folded['lambda']:g}; visitors "
          f"served {visitors['lightfm']:g} lightfm + {visitors['item_item']:g} item_item, chosen on "
          f"{folded['visitor_share_chosen_on']['users']} other users left out):")  # fmt: skip
    for name, m in folded["models"].items():
        print(f"  {name:<18} precision@10 {m['precision@10']:.4f}  ndcg@10 {m['ndcg@10']:.4f}")
    replayed = metrics.get("replay")
    if replayed:
        print(f"  replay of {replayed['arrivals']:,} held-out likes of {replayed['users']:,} users, one at a time "
              f"(served model; real time: each arrived like served at once):")  # fmt: skip
        shown = {"static": replayed["static"], "realtime": replayed["realtime"]}
        refold = replayed.get("refold")
        if refold:
            shown |= {"lightfm static": refold["lightfm_alone"]["static"],
                      f"lightfm refold {refold['weight']:g}": refold["lightfm_alone"]["refolded"]}  # fmt: skip
        for name, m in shown.items():
            print(f"  {name:<18} hr@10 {m['hr@10']:.4f}  ndcg@10 {m['ndcg@10']:.4f}")
    if done.pruned:
        print(f"  pruned {len(done.pruned)} old versions: {', '.join(done.pruned)}")


def _interval(ci: list[float] | None) -> str:
    return "–" if ci is None else f"{ci[0]:.2%} to {ci[1]:.2%}"


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
