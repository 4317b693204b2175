"""The serving model: everything the API reads, in compact numpy arrays.

Training builds a `ModelArtifact` from LightFM's user and item representations (so item features
are already folded in) and publishes it in the parts of `recsys.parts`, each a pickled dict of
plain arrays, so that a function downloads only the parts its routes read (each function declares
them). The functions unpickle the parts with `recsys.parts`, whose allow-list admits numpy's array
reconstruction only, and assemble a
`ModelArtifact` holding those parts' fields and no others: a method that needs a part the function
did not load fails loudly (AttributeError) instead of answering from something else. The LightFM
object itself is never pickled, and nothing here imports lightfm or scipy.

Indices versus ids: arrays are indexed by *index* (0..n-1). External ids (the dataset's own user
and movie ids) are kept sorted ascending in `user_ids` / `item_ids`; the first lookup builds an
id -> index dict from them (under 10 ms for 70k users), which answers far faster than a binary search
on a Python int.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np

from recsys import scoring
from recsys.parts import MAX_NEIGHBOURS, PARTS, SCHEMA_VERSION, check_parts, dump_part
from recsys.search import SearchIndex

_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True, eq=False, repr=False)
class ModelArtifact:
    """A trained model as the API serves it.

    Attributes
    ----------
    user_ids, item_ids : ndarray of int, shape (n_users,) / (n_items,)
        External ids, strictly ascending; position = index.
    user_factors : ndarray of float32, shape (n_users, d)
    user_biases : ndarray of float32, shape (n_users,)
    item_factors : ndarray of float32, shape (n_items, d)
    item_biases : ndarray of float32, shape (n_items,)
        LightFM representations: score(u, i) = user_biases[u] + item_biases[i]
        + user_factors[u] @ item_factors[i], exactly what `LightFM.predict` computes.
    item_item_indptr : ndarray of int64, shape (n_items + 1,)
    item_item_targets : ndarray of int (as `history_items`), shape (n_weights,)
    item_item_weights : ndarray of int16, shape (n_weights,)
    item_item_scales : ndarray of float32, shape (n_items,)
        The sparse item-item model (`training.itemitem`), CSR by liked item: row i lists the
        items i points at and how much (a weight into item j is ``weight * item_item_scales[j]``);
        a user's item-item scores are the sum of the rows of the items they like, each weighted
        by its recency.
    item_item_recency : ndarray of float32, shape (likes,)
        The weight of a user's k-th newest like; its length is how many of their newest likes the
        item-item side reads (`recsys.parts.ITEM_ITEM_LIKES` when this release trains it).
        The weight of a user's k-th newest like (k = 0: the newest) in their item-item scores,
        chosen by training on its validation split (all ones: order ignored).
    blend_shares : ndarray of float32, shape (2,)
        LightFM's and the item-item model's shares of a trained user's personalized score, each
        model's scores z-scored per user first (`scoring.blend`); chosen by training on its
        validation split.
    visitor_shares : ndarray of float32, shape (2,)
        The same for a visitor (`recommend_for`), whose LightFM side is folded in: chosen by
        training on users left out of a fit and folded in (`training.foldin`).
    neighbours : ndarray of uint16 (int32 above 65,535 items), shape (n_items, m)
    neighbour_sims : ndarray of float32, shape (n_items, m)
        Each item's m = min(MAX_NEIGHBOURS, n_items - 1) nearest items, best first, and their
        similarities; a row with fewer than m is padded with ``-inf`` similarities. Only items
        that somebody liked are ever listed. For a liked item the neighbours are the most
        cosine-similar item vectors (`nearest_neighbours`, which ranks exactly as `similar_to`);
        a never-liked item's vector was never pulled towards anything, so its row holds the liked
        items sharing most of its genres (`genre_neighbours`) and `similar` says so.
    popularity : ndarray of int32, shape (n_items,)
        Item indices, most liked first (ties: lower index first).
    like_counts : ndarray of int32, shape (n_items,)
        Number of users who liked each item.
    history_indptr : ndarray of int64, shape (n_users + 1,)
    history_items : ndarray of int, shape (n_likes,)
    history_ratings : ndarray of uint8, shape (n_likes,)
        Rating times two (half stars fit).
    history_days : ndarray of uint16, shape (n_likes,)
        Days since 1970-01-01. User u's likes are rows history_indptr[u]:history_indptr[u+1],
        newest first.
    unliked_indptr : ndarray of int64, shape (n_users + 1,)
    unliked_items : ndarray of int (as `history_items`), shape (n_unliked,)
        The items each user rated below the like threshold, ascending per user. A user's *seen*
        set is their likes plus these: every movie they rated, which no recommendation returns.
        Kept apart from the likes (and without ratings or dates) because that is all serving
        needs of them: 2 bytes a rating at the ML-10M shape.
    titles : tuple of str, length n_items
    years : ndarray of int16, shape (n_items,)
        Release year, 0 when unknown.
    genre_names : tuple of str
    item_genres : ndarray of uint32, shape (n_items,)
        Bit g is set when the movie has genre_names[g].
    provenance : dict
        version, created_at, params, data (summary and fingerprint), metrics, libraries.
    fold_in_map : ndarray of float32, shape (d + 1, d)
        Maps the mean vector of a visitor's liked items to a user vector (`scoring.fold_in`);
        fitted by training on its own users' vectors.
    refold_weight : float
        How much of a known user's LightFM vector, once they have likes the model never saw (live
        events), is a fold-in of all their likes (`scoring.refold`); chosen by training on the
        validation split's replay, 0 keeping the trained vector.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_factors: np.ndarray
    user_biases: np.ndarray
    item_factors: np.ndarray
    item_biases: np.ndarray
    item_item_indptr: np.ndarray
    item_item_targets: np.ndarray
    item_item_weights: np.ndarray
    item_item_scales: np.ndarray
    item_item_recency: np.ndarray
    blend_shares: np.ndarray
    visitor_shares: np.ndarray
    neighbours: np.ndarray
    neighbour_sims: np.ndarray
    popularity: np.ndarray
    like_counts: np.ndarray
    history_indptr: np.ndarray
    history_items: np.ndarray
    history_ratings: np.ndarray
    history_days: np.ndarray
    unliked_indptr: np.ndarray
    unliked_items: np.ndarray
    fold_in_map: np.ndarray
    refold_weight: float
    titles: tuple[str, ...]
    years: np.ndarray
    genre_names: tuple[str, ...]
    item_genres: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    # -- identity ---------------------------------------------------------------------------

    @property
    def version(self) -> str:
        return str(self.provenance.get("version", "unversioned"))

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts this instance holds (all of them, unless it was assembled from some)."""
        state = vars(self)
        return tuple(name for name, names in PARTS.items() if names[0] in state)

    def __repr__(self) -> str:
        return f"ModelArtifact(version={self.version!r}, items={self.n_items}, parts={','.join(self.parts)})"

    # -- parts ------------------------------------------------------------------------------

    def part(self, name: str) -> dict[str, Any]:
        """The fields of part `name`, as published (see `PARTS`)."""
        return {field_name: getattr(self, field_name) for field_name in PARTS[name]}

    def to_parts(self) -> dict[str, bytes]:
        """Every part, pickled in the envelope `recsys.parts.load_part` reads."""
        return {name: dump_part(name, self.version, self.part(name)) for name in PARTS}

    @classmethod
    def from_parts(cls, parts: dict[str, dict[str, Any]]) -> ModelArtifact:
        """An instance holding exactly the fields of `parts` (which must include "catalog"), validated.

        Raises ValueError when a part is unknown, a part's fields are not exactly its `PARTS` entry,
        or the fields are inconsistent (`recsys.parts.check_parts`).
        """
        check_parts(parts)
        model = cls.__new__(cls)
        for values in parts.values():
            vars(model).update(values)
        return model

    # -- lookups ----------------------------------------------------------------------------

    def user_index(self, user_id: int) -> int | None:
        """Index of an external user id, or None when the model does not know it.

        A binary search of the ascending ids (`recsys.parts` checks they ascend): a map of every
        user would cost a cold start 9 ms to build at the ML-10M shape, for one lookup a request.
        """
        u = int(np.searchsorted(self.user_ids, user_id))
        return u if u < self.n_users and int(self.user_ids[u]) == user_id else None

    def item_index(self, movie_id: int) -> int | None:
        """Index of an external movie id, or None when the model does not know it."""
        return self._item_positions.get(movie_id)

    @cached_property
    def _item_positions(self) -> dict[int, int]:
        return dict(zip(self.item_ids.tolist(), range(self.n_items), strict=True))

    def liked(self, u: int) -> slice:
        """Rows of the history arrays that hold user index `u`'s likes, newest first."""
        return slice(int(self.history_indptr[u]), int(self.history_indptr[u + 1]))

    def unliked(self, u: int) -> slice:
        """Rows of `unliked_items` that hold the items user index `u` rated below the like threshold."""
        return slice(int(self.unliked_indptr[u]), int(self.unliked_indptr[u + 1]))

    def has_likes(self, u: int) -> bool:
        return bool(self.history_indptr[u + 1] > self.history_indptr[u])

    def seen(self, u: int) -> np.ndarray:
        """Every item user index `u` rated, liked or not (int64, liked first)."""
        return np.concatenate((self.history_items[self.liked(u)], self.unliked_items[self.unliked(u)])).astype(np.int64)

    def genre_bit(self, name: str) -> int | None:
        """The bit mask of a genre, matched case-insensitively, or None if unknown."""
        folded = name.casefold()
        for g, known in enumerate(self.genre_names):
            if known.casefold() == folded:
                return 1 << g
        return None

    @cached_property
    def search_index(self) -> SearchIndex:
        """The title search's index (`recsys.search`), built on the first search."""
        return SearchIndex.build(self.titles, self.popularity)

    def genres_of(self, i: int) -> list[str]:
        """Item `i`'s genre names, from its bits (per item: a table of all of them cost 25 ms of a
        cold start at the ML-10M shape)."""
        bits = int(self.item_genres[i])
        return [g for b, g in enumerate(self.genre_names) if bits >> b & 1]

    def rated_on(self, row: int) -> str:
        """ISO date of a history row."""
        return (_EPOCH + dt.timedelta(days=int(self.history_days[row]))).isoformat()

    @cached_property
    def item_unit(self) -> np.ndarray:
        """`item_factors` scaled to unit length (all-zero rows stay zero), for cosine similarity:
        computed on first use (a millisecond at the ML-10M shape), not published (2.7 MB)."""
        return unit_rows(self.item_factors)

    # -- scoring ----------------------------------------------------------------------------

    def score_user(self, u: int) -> np.ndarray:
        """LightFM's scores of every item for user index `u`, float32 of shape (n_items,)."""
        return scoring.user_scores(
            self.user_factors[u], float(self.user_biases[u]), self.item_factors, self.item_biases
        )

    def item_item_scores(self, newest: np.ndarray, shares: np.ndarray) -> np.ndarray:
        """The item-item model's scores of every item for someone whose newest likes are `newest`
        (item indices, newest first, at most `item_item_cap`), each weighted by its recency; all
        zeros when the model's share of their blend, `shares`, is 0 (what it adds then)."""
        if not shares[1]:
            return np.zeros(self.n_items, dtype=np.float32)
        recency = None if self._uniform_recency else self.item_item_recency[: newest.size]
        return scoring.item_item_scores(
            self.item_item_indptr, self.item_item_targets, self.item_item_weights, self.item_item_scales, newest,
            recency,
        )

    @cached_property
    def _uniform_recency(self) -> bool:
        """Whether every like weighs 1 (validation chose no decay): the sum then skips the
        multiply, a seventh of a heavy user's sum at the ML-10M shape."""
        return bool(np.all(self.item_item_recency == 1))

    def personal_scores(self, u: int) -> np.ndarray:
        """The served personalized score of every item for user index `u`: LightFM's and the
        item-item model's (from their newest `item_item_cap` likes), blended (`scoring.blend`)."""
        newest = self.newest_likes(u)
        return scoring.blend(self.score_user(u), self.item_item_scores(newest, self.blend_shares), self.blend_shares)

    def newest_likes(self, u: int) -> np.ndarray:
        """User index `u`'s newest `item_item_cap` liked item indices, newest first: all that
        their item-item side reads."""
        rows = self.liked(u)
        return self.history_items[rows.start : min(rows.stop, rows.start + self.item_item_cap)].astype(np.int64)

    @property
    def item_item_cap(self) -> int:
        """How many of a user's newest likes the item-item side reads: as many as the model has
        recency weights (it was trained and evaluated so)."""
        return int(self.item_item_recency.shape[0])

    def recommend(self, u: int, k: int, genre_bit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best items for user index `u` among those the user has not rated at all.

        Returns ``(items, scores)``: int64 indices best first, and their float32 blended scores.
        """
        scores = self.personal_scores(u)
        scores[self.history_items[self.liked(u)]] = -np.inf
        scores[self.unliked_items[self.unliked(u)]] = -np.inf
        return self._best(scores, k, genre_bit)

    def merged_likes(self, u: int, likes: np.ndarray, acted: np.ndarray) -> np.ndarray:
        """User index `u`'s newest likes with their live events merged, newest first, at most
        `item_item_cap`: the events' `likes` (item indices, newest first) before the trained ones,
        and a trained like that an event names (`acted`: every item an event names) only where the
        event put it."""
        rows = self.liked(u)
        pool = self.history_items[rows.start : min(rows.stop, rows.start + self.item_item_cap + acted.size)]
        kept = (pool[~np.isin(pool, acted)] if acted.size else pool).astype(np.int64)
        return np.concatenate((likes, kept))[: self.item_item_cap]

    def recommend_merged(
        self, u: int, newest: np.ndarray, likes: np.ndarray, acted: np.ndarray, k: int, genre_bit: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`recommend` for user index `u` with live events: LightFM's side from `live_scores`, the
        item-item side from `newest` (`merged_likes`), and never an item they rated in training or
        an event names (`acted`). Returns ``(items, scores)`` as `recommend` does."""
        scores = scoring.blend(
            self.live_scores(u, likes, acted), self.item_item_scores(newest, self.blend_shares), self.blend_shares
        )
        scores[self.seen(u)] = -np.inf
        scores[acted] = -np.inf
        return self._best(scores, k, genre_bit)

    def live_scores(self, u: int, likes: np.ndarray, acted: np.ndarray) -> np.ndarray:
        """LightFM's scores of every item for user index `u` after their live events: with new
        `likes` (item indices) and a `refold_weight`, their trained vector mixed with a fold-in of
        all their likes (`scoring.refold`: the trained ones but those an event names in `acted`,
        and the new); else the trained vector's (`score_user`)."""
        if not self.refold_weight or not likes.size:
            return self.score_user(u)
        trained = self.history_items[self.liked(u)]
        liked = np.concatenate((likes, trained[~np.isin(trained, acted)] if acted.size else trained))
        mean = self.item_factors[liked].mean(axis=0, dtype=np.float32)
        vector = scoring.refold(self.user_factors[u], mean, self.fold_in_map, self.refold_weight)
        return scoring.user_scores(vector, float(self.user_biases[u]), self.item_factors, self.item_biases)

    def recommend_for(
        self, liked: np.ndarray, exclude: np.ndarray, k: int, genre_bit: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best items for a visitor the model was not trained on: LightFM's side folded in
        from `liked`, the item-item side from their newest `item_item_cap` likes weighted by
        recency, as a trained user's, blended by the visitors' shares.

        `liked` (unique item indices, newest first, at least one) and `exclude` (item indices) are
        never returned. Returns ``(items, scores)`` as `recommend` does.
        """
        vector = scoring.fold_in(self.item_factors, liked, self.fold_in_map)
        lightfm = scoring.user_scores(vector, 0.0, self.item_factors, self.item_biases)
        newest = liked[: self.item_item_cap]
        scores = scoring.blend(lightfm, self.item_item_scores(newest, self.visitor_shares), self.visitor_shares)
        scores[liked] = -np.inf
        scores[exclude] = -np.inf
        return self._best(scores, k, genre_bit)

    def _best(self, scores: np.ndarray, k: int, genre_bit: int | None) -> tuple[np.ndarray, np.ndarray]:
        if genre_bit is not None:
            scores[(self.item_genres & genre_bit) == 0] = -np.inf
        items = scoring.top_k(scores, k)
        return items, scores[items]

    def popular(self, k: int, exclude: np.ndarray | None = None, genre_bit: int | None = None) -> np.ndarray:
        """The k most liked item indices, skipping `exclude` and items outside `genre_bit`."""
        keep = np.ones(self.n_items, dtype=bool)
        if exclude is not None:
            keep[exclude] = False
        if genre_bit is not None:
            keep &= (self.item_genres & genre_bit) != 0
        ranked: np.ndarray = self.popularity[keep[self.popularity]]
        return ranked[:k]

    def similar(self, i: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to k items nearest to item index `i` (itself excluded), never a never-liked item.

        Returns ``(items, similarities)``: int64 indices best first and float32 similarities:
        cosines of the item vectors in [-1, 1], or for a never-liked `i` (see `basis`) the share
        of genres in common in [0, 1].
        """
        m = self.neighbours.shape[1]
        if k > m and self.like_counts[i] > 0:
            return similar_to(self.item_unit, i, k, self.like_counts > 0)
        sims = self.neighbour_sims[i, :k]
        n = int(np.count_nonzero(sims > -np.inf))  # padding sorts last
        return self.neighbours[i, :n].astype(np.int64), sims[:n]

    def basis(self, i: int) -> Literal["model", "genres"]:
        """What `similar(i)` ranks by: "model" (item vectors) or "genres" (a never-liked item)."""
        return "model" if self.like_counts[i] > 0 else "genres"

    def because(self, u: int, items: np.ndarray, n: int = 3) -> list[np.ndarray]:
        """For each item, up to `n` of user `u`'s liked items behind it, best first, among the likes
        their item-item side read (`newest_likes`): a like it never summed is never named for it."""
        return self.because_liked(self.newest_likes(u), items, n)

    def because_liked(self, liked: np.ndarray, items: np.ndarray, n: int = 3) -> list[np.ndarray]:
        """For each item, up to `n` of the `liked` item indices (newest first) behind it, best first.

        Those among the newest `item_item_cap` whose weighted row adds to the item's score (its
        item-item weight towards the item times the like's recency is positive), most first: what
        they add, said directly. When none has, LightFM's side put it there: the liked items whose
        vectors are the most cosine-similar to it.
        """
        liked = liked[: self.item_item_cap]
        if liked.size == 0:
            return [np.empty(0, dtype=np.int64) for _ in items]
        # One pass over the liked items' rows finds every positive weight into a pick (a heavy
        # user's rows hold hundreds of thousands), then each pick's are ordered: most added first
        # (into one item, one scale: the int16 weights times the recency compare as they are),
        # ties by liked item.
        slot = np.full(self.n_items, -1, dtype=np.int64)
        slot[items] = np.arange(items.size)
        rows = scoring.rows_of(self.item_item_indptr, liked)
        at = slot[self.item_item_targets[rows]]
        hits = np.flatnonzero(at >= 0)
        ends = np.cumsum(self.item_item_indptr[liked + 1] - self.item_item_indptr[liked])
        place = np.searchsorted(ends, hits, side="right")  # which like each hit's row is
        weights = self.item_item_weights[rows[hits]].astype(np.float32) * self.item_item_recency[place]
        positive = weights > 0
        hits, weights, place = hits[positive], weights[positive], place[positive]
        sources, at = liked[place], at[hits]
        order = np.lexsort((sources, -weights, at))
        sources, bounds = sources[order], np.searchsorted(at[order], np.arange(items.size + 1))
        reasons = []
        for j, item in enumerate(items.tolist()):
            if bounds[j + 1] > bounds[j]:
                reasons.append(sources[bounds[j] : min(bounds[j + 1], bounds[j] + n)])
            else:
                sims = self.item_unit[liked] @ self.item_unit[item]
                reasons.append(liked[scoring.top_k(sims, n)])
        return reasons

    # -- integrity --------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ValueError naming the first field that is wrong (see `recsys.parts.check_parts`)."""
        state = vars(self)
        check_parts({name: {f: state[f] for f in names} for name, names in PARTS.items() if names[0] in state})


def unit_rows(factors: np.ndarray) -> np.ndarray:
    """Rows of `factors` scaled to unit length (all-zero rows stay zero), float32."""
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    unit: np.ndarray = np.divide(factors, norms, out=np.zeros(factors.shape, dtype=np.float32), where=norms > 0)
    return unit


def similar_to(unit: np.ndarray, i: int, k: int, eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of `unit` most cosine-similar to row `i`, and their cosines.

    Row `i` itself, and rows where the boolean `eligible` (shape (n,)) is False, are never returned.
    """
    sims = unit @ unit[i]
    if eligible is not None:
        sims[~eligible] = -np.inf
    sims[i] = -np.inf
    items = scoring.top_k(sims, k)
    return items, sims[items]


def nearest_neighbours(
    unit: np.ndarray, m: int = MAX_NEIGHBOURS, eligible: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every row's `m` most similar eligible rows, as `similar_to` ranks them: (indices, cosines).

    Rows with fewer than `m` candidates are padded with index 0 and similarity ``-inf``.
    """
    n = unit.shape[0]
    m = min(m, n - 1)
    dtype = np.uint16 if n <= np.iinfo(np.uint16).max + 1 else np.int32
    indices = np.zeros((n, m), dtype=dtype)
    sims = np.full((n, m), -np.inf, dtype=np.float32)
    for i in range(n):
        items, values = similar_to(unit, i, m, eligible)
        indices[i, : items.size], sims[i, : items.size] = items, values
    return indices, sims


def genre_neighbours(
    item_genres: np.ndarray, popularity: np.ndarray, eligible: np.ndarray, rows: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each item index in `rows`, the `m` eligible items sharing most of its genres.

    Similarity is the Jaccard index of the genre sets, in [0, 1]; ties go to the more popular item
    (its place in `popularity`). Items with no genre in common are not listed (``-inf`` padding).

    Parameters
    ----------
    item_genres : ndarray of uint32, shape (n_items,)
        Genre bit masks.
    popularity : ndarray of int, shape (n_items,)
        Item indices, most liked first.
    eligible : ndarray of bool, shape (n_items,)
    rows : ndarray of int, shape (r,)
    m : int

    Returns
    -------
    (indices, similarities) of shapes (r, m): int as `nearest_neighbours`, float32.
    """
    n = item_genres.shape[0]
    bits = ((item_genres[:, None] >> np.arange(32, dtype=np.uint32)) & 1).astype(np.float32)  # (n, 32)
    sizes = bits.sum(axis=1)
    rank = np.empty(n, dtype=np.int64)
    rank[popularity] = np.arange(n)
    dtype = np.uint16 if n <= np.iinfo(np.uint16).max + 1 else np.int32
    indices = np.zeros((rows.size, m), dtype=dtype)
    sims = np.full((rows.size, m), -np.inf, dtype=np.float32)
    for r, i in enumerate(rows.tolist()):
        common = bits @ bits[i]
        union = sizes + sizes[i] - common
        jaccard = np.divide(common, union, out=np.zeros(n, dtype=np.float32), where=union > 0)
        ok = eligible & (common > 0)
        ok[i] = False
        candidates = np.flatnonzero(ok)
        order = np.lexsort((rank[candidates], -jaccard[candidates]))[:m]
        indices[r, : order.size] = candidates[order]
        sims[r, : order.size] = jaccard[candidates[order]]
    return indices, sims
