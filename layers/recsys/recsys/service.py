"""What each route answers, as plain dicts, given the model of the request.

A handler fetches the model once per request and passes it here, so one response never mixes
two models even while a refresh swaps in a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from recsys.artifact import ModelArtifact
from recsys.errors import UnknownGenreError, UnknownMovieError, UnknownUserError
from recsys.schemas import (
    Blend,
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
    from recsys.feedback import FeedbackStore


def movie(model: ModelArtifact, i: int) -> Movie:
    year = int(model.years[i])
    return {
        "movie_id": int(model.item_ids[i]),
        "title": model.titles[i],
        "year": year or None,
        "genres": model.genres_of(i),
    }


def recommendations(
    model: ModelArtifact, user_id: int, k: int, kind: str, genre: str | None, explain: bool
) -> Recommendations:
    bit = _genre_bit(model, genre)
    u = model.user_index(user_id)
    answer: Recommendations = {
        "model_version": model.version, "user_id": user_id, "model": "popularity", "blend": None, "k": k,
        "genre": genre, "fallback": None, "items": [],
    }  # fmt: skip
    if u is None:
        answer["fallback"] = "unknown_user"
        answer["items"] = _popular_items(model, model.popular(k, genre_bit=bit))
    elif kind == "popularity" or not model.has_likes(u):
        # popularity never returns a seen movie either; a user who liked nothing has a vector
        # that training never moved, so they get popularity and are told why
        answer["items"] = _popular_items(model, model.popular(k, exclude=model.seen(u), genre_bit=bit))
        if kind != "popularity":
            answer["fallback"] = "no_likes"
    else:
        items, scores = model.recommend(u, k, bit)
        reasons = model.because(u, items) if explain else None
        answer["model"], answer["items"] = "personalized", _personalized(model, items, scores, reasons)
        answer["blend"] = _blend(model.blend_shares)
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
    likes = store.change(feedback.visitor_id, liked, unliked_ids)
    return {
        "visitor_id": feedback.visitor_id,
        "liked": liked,
        "unliked": unliked_ids,
        "ignored": sorted(set(unknown_like) | set(unknown_unlike)),
        "likes": likes,
    }


def forget(store: FeedbackStore, visitor_id: str) -> Forgotten:
    return {"visitor_id": visitor_id, "deleted": store.forget(visitor_id)}


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


def history(model: ModelArtifact, user_id: int, k: int, offset: int) -> History:
    u = model.user_index(user_id)
    if u is None:
        raise UnknownUserError(user_id)
    rows = model.liked(u)
    total = rows.stop - rows.start
    page = range(rows.start + min(offset, total), rows.start + min(offset + k, total))
    items: list[Liked] = [
        {
            **movie(model, int(model.history_items[r])),
            "rating": float(model.history_ratings[r]) / 2,
            "rated_at": model.rated_on(r),
        }
        for r in page
    ]
    return {
        "model_version": model.version,
        "user_id": user_id,
        "total": total,
        "offset": offset,
        "k": k,
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
