"""What each route answers, as plain dicts, given the model of the request.

A handler fetches the model once per request and passes it here, so one response never mixes
two models even while a refresh swaps in a new one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from recsys.artifact import ModelArtifact
from recsys.errors import (
    EventsUnavailableError,
    InvalidRequestError,
    UnknownGenreError,
    UnknownMovieError,
    UnknownUserError,
)
from recsys.events import Event, EventLog, EventReader, parse_time
from recsys.schemas import (
    Blend,
    Events,
    EventsForgotten,
    EventsStored,
    Feedback,
    FeedbackStored,
    Forgotten,
    History,
    Liked,
    ModelInfo,
    Movie,
    Movies,
    PopularMovie,
    Recommendation,
    Recommendations,
    Similar,
    SimilarMovie,
    TasteRecommendations,
    Users,
    UserSummary,
)

if TYPE_CHECKING:
    from recsys.feedback import FeedbackStore, Source

logger = logging.getLogger(__name__)


def movie(model: ModelArtifact, i: int) -> Movie:
    year = int(model.years[i])
    return {
        "movie_id": int(model.item_ids[i]),
        "title": model.titles[i],
        "year": year or None,
        "genres": model.genres_of(i),
    }


class Live(NamedTuple):
    """A user's live events as item indices of the model: `likes` (newest first) and `acted`
    (every movie an event names: seen); `forgotten` when they asked to be forgotten, so their
    trained profile no longer counts; `events` the events themselves (`recsys.events.Recent`)."""

    likes: np.ndarray
    acted: np.ndarray
    forgotten: bool
    events: tuple[Event, ...]


NO_EVENTS = Live(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), False, ())


def live_events(model: ModelArtifact, log: EventReader | None, user_id: int) -> Live | None:
    """`user_id`'s events from one bounded read of `log` (`NO_EVENTS` without a log); None when
    the table did not answer in time: the caller answers from the model alone, and says so."""
    if log is None:
        return NO_EVENTS
    try:
        recent = log.recent(user_id)
    except EventsUnavailableError as exc:
        logger.warning("events of user %s not read; answering from the model alone: %s", user_id, exc)
        return None
    min_rating = float(model.provenance.get("params", {}).get("min_rating", 4.0))
    likes, acted = [], []
    for event in recent.events:  # newest first, one per movie
        i = model.item_index(event.movie_id)
        if i is not None:
            acted.append(i)
            if event.liked(min_rating):
                likes.append(i)
    return Live(np.asarray(likes, dtype=np.int64), np.asarray(acted, dtype=np.int64),
                recent.forgotten_at is not None, recent.events)  # fmt: skip


def recommendations(
    model: ModelArtifact, user_id: int, k: int, kind: str, genre: str | None, explain: bool,
    log: EventReader | None = None,
) -> Recommendations:  # fmt: skip
    """The user's picks: their trained profile with their live events merged (one read of `log`:
    what they did since the model was trained is seen, and their new likes are their newest);
    popularity for a user with neither."""
    bit = _genre_bit(model, genre)
    live = live_events(model, log, user_id)
    answer: Recommendations = {
        "model_version": model.version, "user_id": user_id, "model": "popularity", "blend": None, "k": k,
        "genre": genre, "fallback": None, "realtime": None if log is None else live is not None, "items": [],
    }  # fmt: skip
    live = live or NO_EVENTS
    u = None if live.forgotten else model.user_index(user_id)
    if kind == "popularity" or (live.likes.size == 0 and (u is None or not model.has_likes(u))):
        # popularity never returns a seen movie either; a user who liked nothing has a vector
        # that training never moved, so they get popularity and are told why
        seen = live.acted if u is None else np.concatenate((model.seen(u), live.acted))
        answer["items"] = _popular_items(model, model.popular(k, exclude=seen, genre_bit=bit))
        if kind != "popularity":
            answer["fallback"] = "unknown_user" if u is None else "no_likes"
        return answer
    if u is None or not model.has_likes(u):  # known by their events only: served as a visitor is
        seen = live.acted if u is None else np.concatenate((model.seen(u), live.acted))  # what they rated low too
        items, scores = model.recommend_for(live.likes, seen, k, bit)
        newest, shares = live.likes, model.visitor_shares
    else:
        newest = model.merged_likes(u, live.likes, live.acted)
        items, scores = model.recommend_merged(u, newest, live.likes, live.acted, k, bit)
        shares = model.blend_shares
    reasons = model.because_liked(newest, items) if explain else None
    answer["model"], answer["items"] = "personalized", _personalized(model, items, scores, reasons)
    answer["blend"] = _blend(shares)
    return answer


def _blend(shares: np.ndarray) -> Blend:
    lightfm, item_item = shares.tolist()
    return {"lightfm": round(lightfm, 6), "item_item": round(item_item, 6)}


def recommendations_for(
    model: ModelArtifact,
    liked_ids: Sequence[int],
    disliked_ids: Sequence[int],
    k: int,
    genre: str | None,
    explain: bool,
) -> TasteRecommendations:
    """Picks for a visitor the model was not trained on, folded in from the movies they like, given
    in the order they liked them (the last is the newest: it weighs most)."""
    bit = _genre_bit(model, genre)
    newest_first, unknown_liked = _known_items(model, liked_ids[::-1])  # a repeated id counts where it was last
    liked = newest_first[::-1]
    disliked, unknown_disliked = _known_items(model, disliked_ids)
    answer: TasteRecommendations = {
        "model_version": model.version,
        "model": "popularity",
        "blend": None,
        "k": k,
        "fallback": None,
        "genre": genre,
        "liked": [int(model.item_ids[i]) for i in liked.tolist()],
        "ignored": sorted(set(unknown_liked) | set(unknown_disliked)),
        "items": [],
    }
    if liked.size == 0:
        items = model.popular(k, exclude=disliked, genre_bit=bit)
        answer["fallback"], answer["items"] = "no_known_likes", _popular_items(model, items)
        return answer
    items, scores = model.recommend_for(newest_first, disliked, k, bit)
    reasons = model.because_liked(newest_first, items) if explain else None
    answer["model"], answer["items"] = "personalized", _personalized(model, items, scores, reasons)
    answer["blend"] = _blend(model.visitor_shares)
    return answer


def store_feedback(model: ModelArtifact, store: FeedbackStore, feedback: Feedback) -> FeedbackStored:
    """Store a visitor's likes and unlikes of the movies `model` knows; the others are listed, not stored."""
    unliked = set(feedback.unlike)  # a movie in both lists ends unliked: the unlike is the later word
    like, unknown_like = _known_items(model, [m for m in feedback.like if m not in unliked])
    unlike, unknown_unlike = _known_items(model, feedback.unlike)
    liked, unliked_ids = model.item_ids[like].tolist(), model.item_ids[unlike].tolist()
    likes = store.change(feedback.visitor_id, liked, unliked_ids, picked_sources(model, feedback))
    return {
        "visitor_id": feedback.visitor_id,
        "liked": liked,
        "unliked": unliked_ids,
        "ignored": sorted(set(unknown_like) | set(unknown_unlike)),
        "likes": likes,
        "shown": store.record_shown(feedback.visitor_id, shown_counts(model, feedback)),
    }


def shown_counts(model: ModelArtifact, feedback: Feedback) -> dict[tuple[str, str], int]:
    """The picks `feedback` says were shown, per (model version, list): the serving model's only,
    as an old page's picks describe no model the nightly job compares."""
    shown: dict[tuple[str, str], int] = {}
    for group in feedback.shown:
        if group.model_version == model.version:
            shown[group.model_version, group.list] = shown.get((group.model_version, group.list), 0) + group.picks
    return shown


def picked_sources(model: ModelArtifact, feedback: Feedback) -> dict[int, Source]:
    """Where each liked pick was shown, of the serving model's picks. An entry for a movie this
    request does not like is ignored, as an unknown movie is: where a pick was shown never costs
    the visitor their like. The first entry of a movie wins."""
    from recsys.feedback import Source  # the feedback function's own module: the others never load it

    sources: dict[int, Source] = {}
    liked = set(feedback.like) - set(feedback.unlike)
    for pick in feedback.picked:
        if pick.movie_id in liked and pick.model_version == model.version:
            sources.setdefault(pick.movie_id, Source(pick.list, pick.model_version, pick.position))
    return sources


def forget(store: FeedbackStore, visitor_id: str) -> Forgotten:
    return {"visitor_id": visitor_id, "deleted": store.forget(visitor_id)}


def record_events(model: ModelArtifact, log: EventLog, body: Events) -> EventsStored:
    """Store a user's events of the movies `model` knows; the others are listed, not stored."""
    now = log.clock()
    known, unknown = [], []
    for n, e in enumerate(body.events):
        try:
            at = parse_time(e.at, now, log.settings.retention_seconds)
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"body parameter events.{n}.at: {exc}") from None
        if (e.kind == "rating") != (e.rating is not None):
            raise InvalidRequestError(
                f"body parameter events.{n}: a rating event gives its rating, and only a rating event does"
            )
        if model.item_index(e.movie_id) is None:
            unknown.append(e.movie_id)
        else:
            known.append(Event(e.movie_id, e.kind, at, e.rating))
    recorded = log.record(body.user_id, known)
    return {"user_id": body.user_id, "stored": recorded.stored, "stale": recorded.stale,
            "ignored": sorted(set(unknown))}  # fmt: skip


def forget_user(log: EventLog, user_id: int) -> EventsForgotten:
    deleted, at = log.forget(user_id)
    return {"user_id": user_id, "deleted": deleted, "forgotten_at": _iso_ms(at)}


def _iso_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _known_items(model: ModelArtifact, ids: Sequence[int]) -> tuple[np.ndarray, list[int]]:
    """Unique item indices of the known ids (first occurrence order), and the unknown ids."""
    known: list[int] = []
    unknown: list[int] = []
    for movie_id in dict.fromkeys(ids):
        i = model.item_index(movie_id)
        (unknown if i is None else known).append(movie_id if i is None else i)
    return np.asarray(known, dtype=np.int64), unknown


def _personalized(
    model: ModelArtifact, items: np.ndarray, scores: np.ndarray, reasons: list[np.ndarray] | None
) -> list[Recommendation]:
    """Scored picks, each with the liked movies behind it when `reasons` are given."""
    out = [_scored(model, i, round(float(s), 5)) for i, s in zip(items.tolist(), scores.tolist(), strict=True)]
    for entry, liked in zip(out, reasons or [], strict=False):
        entry["because_you_liked"] = [movie(model, j) for j in liked.tolist()]
    return out


def history(
    model: ModelArtifact, user_id: int, k: int, offset: int, log: EventReader | None = None
) -> History:
    """The movies the user likes, newest first: their live events' likes (`source` "event"), then
    the trained ones that no event changed (`source` "model"). Without events, the trained ones."""
    read = live_events(model, log, user_id)
    live = read or NO_EVENTS
    u = None if live.forgotten else model.user_index(user_id)
    min_rating = float(model.provenance.get("params", {}).get("min_rating", 4.0))
    events = [(i, e) for e in live.events if e.liked(min_rating) and (i := model.item_index(e.movie_id)) is not None]
    if u is None and not events:
        raise UnknownUserError(user_id)
    rows = model.liked(u) if u is not None else range(0)
    acted = {int(i) for i in live.acted.tolist()}
    trained = [r for r in range(rows.start, rows.stop) if int(model.history_items[r]) not in acted]
    total = len(events) + len(trained)
    items: list[Liked] = []
    for n in range(min(offset, total), min(offset + k, total)):
        if n < len(events):
            i, e = events[n]
            items.append({**movie(model, i), "rating": e.rating,
                          "rated_at": _iso_ms(e.at)[:10], "source": "event"})  # fmt: skip
        else:
            r = trained[n - len(events)]
            items.append({**movie(model, int(model.history_items[r])), "rating": float(model.history_ratings[r]) / 2,
                          "rated_at": model.rated_on(r), "source": "model"})  # fmt: skip
    return {
        "model_version": model.version,
        "user_id": user_id,
        "total": total,
        "offset": offset,
        "k": k,
        "realtime": None if log is None else read is not None,
        "items": items,
    }


def sample_users(model: ModelArtifact, limit: int, seed: int, min_likes: int = 5) -> Users:
    """A deterministic sample of users with at least `min_likes` likes, for the website's picker."""
    likes = np.diff(model.history_indptr)
    pool = np.flatnonzero(likes >= min_likes)
    if pool.size == 0:
        pool = np.flatnonzero(likes > 0)
    chosen = np.sort(np.random.default_rng(seed).choice(pool, size=min(limit, pool.size), replace=False))
    items: list[UserSummary] = []
    for u in chosen.tolist():
        liked = model.history_items[model.liked(u)]
        bits = model.item_genres[liked]
        counts = [(int(((bits >> g) & 1).sum()), name) for g, name in enumerate(model.genre_names)]
        top = [name for n, name in sorted(counts, key=lambda c: (-c[0], c[1])) if n > 0][:3]
        items.append({"user_id": int(model.user_ids[u]), "likes": int(likes[u]), "top_genres": top})
    return {"model_version": model.version, "seed": seed, "items": items}


def similar(model: ModelArtifact, movie_id: int, k: int) -> Similar:
    i = model.item_index(movie_id)
    if i is None:
        raise UnknownMovieError(movie_id)
    items, sims = model.similar(i, k)
    neighbours: list[SimilarMovie] = [
        {**movie(model, j), "similarity": round(float(s), 5)}
        for j, s in zip(items.tolist(), sims.tolist(), strict=True)
    ]
    return {
        "model_version": model.version,
        "movie": {**movie(model, i), "likes": int(model.like_counts[i])},
        "basis": model.basis(i),
        "items": neighbours,
    }


def search_movies(model: ModelArtifact, query: str, limit: int) -> Movies:
    """Titles containing every word of `query` (case- and accent-insensitive), prefix matches first,
    then the most liked; an empty query gives the most liked movies. When no title has the words,
    the same without spaces, then the closest titles (`match`: "closest"), for a typo."""
    hits, exact = model.search_index.search(query, limit)
    items: list[PopularMovie] = [{**movie(model, i), "likes": int(model.like_counts[i])} for i in hits.tolist()]
    return {"model_version": model.version, "query": query, "match": "exact" if exact else "closest", "items": items}


#: What training recorded but the public card leaves out: where the ratings were read from.
PRIVATE_DATA = frozenset({"source"})


def model_info(model: ModelArtifact) -> ModelInfo:
    p = model.provenance
    return {
        "model_version": model.version,
        "created_at": p.get("created_at"),
        "users": model.n_users,
        "movies": model.n_items,
        "genres": list(model.genre_names),
        "data": {k: v for k, v in p.get("data", {}).items() if k not in PRIVATE_DATA},
        "params": p.get("params", {}),
        "metrics": p.get("metrics", {}),
        "libraries": p.get("libraries", {}),
    }


def _genre_bit(model: ModelArtifact, genre: str | None) -> int | None:
    if genre is None or genre.strip() == "":
        return None
    bit = model.genre_bit(genre.strip())
    if bit is None:
        raise UnknownGenreError(genre, tuple(model.genre_names))
    return bit


def _popular_items(model: ModelArtifact, items: np.ndarray) -> list[Recommendation]:
    return [_scored(model, i, float(model.like_counts[i])) for i in items.tolist()]


def _scored(model: ModelArtifact, i: int, score: float) -> Recommendation:
    return {**movie(model, i), "score": score, "because_you_liked": None}
