"""From parsed ratings to the positives a model learns from, with every drop counted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from training.datasets import DataError, RawRatings, placeholder_movies


@dataclass
class Interactions:
    """Clean ratings, one row per (user, movie), with dense indices.

    users, items : int32 indices into `user_ids` / `item_ids` (both ascending external ids).
    ratings : float32; timestamps : int64 seconds; order : int64 line numbers (tie-breaker).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    order: np.ndarray
    summary: dict[str, object]

    def positives(self, min_rating: float) -> np.ndarray:
        """Boolean mask of the rows rated at least `min_rating`."""
        return self.ratings >= min_rating

    def fingerprint(self) -> str:
        """sha256 of the clean data, so a cached model can be matched to what it was trained on."""
        h = hashlib.sha256()
        for arr in (self.user_ids, self.item_ids, self.users, self.items, self.ratings, self.timestamps):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()


def clean(raw: RawRatings, min_rating: float, max_bad_fraction: float) -> Interactions:
    """Check the bad-row threshold, keep each (user, movie)'s latest rating, index ids.

    Raises
    ------
    DataError
        When more than `max_bad_fraction` of the rows are bad (the message quotes the first few
        with their line numbers), or when no positive rating is left.
    """
    total = max(raw.total_rows, 1)
    if raw.bad_count / total > max_bad_fraction:
        quoted = "\n".join(f"  line {b.line}: {b.reason}: {b.text!r}" for b in raw.bad_rows)
        raise DataError(
            f"{raw.source}: {raw.bad_count} of {raw.total_rows} rows are bad "
            f"({raw.bad_count / total:.2%}, above --max-bad-rows {max_bad_fraction:.2%}); first ones:\n{quoted}"
        )
    keep = _latest_per_pair(raw.users, raw.items, raw.timestamps, raw.lines)
    # a placeholder row of the metadata is no movie: its ratings teach nothing and it is never recommended
    placeholders = placeholder_movies(raw.movies)
    of_placeholder = np.isin(raw.items[keep], placeholders)
    dropped = int(of_placeholder.sum())
    keep = keep[~of_placeholder]
    users, items = raw.users[keep], raw.items[keep]
    user_ids, user_idx = np.unique(users, return_inverse=True)
    item_ids, item_idx = np.unique(items, return_inverse=True)
    ratings = raw.ratings[keep]
    positives = int((ratings >= min_rating).sum())
    if positives == 0:
        raise DataError(f"{raw.source}: no rating is >= --min-rating {min_rating:g}; nothing to learn from")
    summary: dict[str, object] = {
        "source": raw.source,
        "format": raw.format,
        "rows": raw.total_rows,
        "bad_rows": raw.bad_count,
        "duplicates": int(raw.users.size - keep.size - dropped),
        "placeholders": {"movies": sorted(placeholders.tolist()), "ratings": dropped,
                         "why": "metadata rows that stand for no movie (the title 'unknown', no year): "
                                "their ratings are left out, so they are never recommended or offered"},
        "ratings": int(keep.size),
        "users": int(user_ids.size),
        "movies": int(item_ids.size),
        "positives": positives,
        "min_rating": min_rating,
    }
    return Interactions(
        user_ids=_smallest_int(user_ids),
        item_ids=_smallest_int(item_ids),
        users=user_idx.astype(np.int32),
        items=item_idx.astype(np.int32),
        ratings=ratings,
        timestamps=raw.timestamps[keep],
        order=raw.lines[keep],
        summary=summary,
    )


def _latest_per_pair(users: np.ndarray, items: np.ndarray, ts: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Row indices to keep: for each (user, item), the latest timestamp, then the latest line."""
    key = users * (int(items.max(initial=0)) + 1) + items
    by_key = np.argsort(key, kind="stable")
    sorted_key = key[by_key]
    dup = np.flatnonzero(sorted_key[1:] == sorted_key[:-1])
    if dup.size == 0:  # the usual case: no duplicates, no second sort
        return np.sort(by_key)
    involved = np.unique(np.concatenate([by_key[dup], by_key[dup + 1]]))
    order = np.lexsort((lines[involved], ts[involved], key[involved]))
    ranked = involved[order]
    last_of_group = np.append(key[ranked][1:] != key[ranked][:-1], True)
    losers = ranked[~last_of_group]
    keep = np.ones(users.size, dtype=bool)
    keep[losers] = False
    return np.flatnonzero(keep)


def _smallest_int(ids: np.ndarray) -> np.ndarray:
    for dtype in (np.int32, np.int64):
        info = np.iinfo(dtype)
        if ids.size == 0 or (ids.min() >= info.min and ids.max() <= info.max):
            return ids.astype(dtype)
    raise DataError("ids do not fit in 64 bits")
