"""The served item-item model: EASE's weights, kept sparse, and its blend with LightFM.

EASE (`training.ease`, Steck 2019) regresses each movie's column of likes on every other movie's:
with G = XᵀX, column j of its weights is the ridge solution ``B[-j, j] = (G[-j,-j] + λI)⁻¹ G[-j, j]``.
All columns at once cost one dense inverse of G, which at the ML-10M shape is 1.4 GB and minutes.
So the served model is computed in one of two ways, by the size of the catalogue:

- up to `DENSE_MAX_ITEMS` movies, EASE itself (one Cholesky inverse), then each movie keeps the
  `keep` weights of largest magnitude that point at it;
- above, each movie j is regressed only on the `keep` movies whose likes are the most similar to
  its own (cosine), N(j): ``B[N, j] = (G[N,N] + λI)⁻¹ G[N, j]``, one small system per movie (the feature selection
  of fsSLIM, Ning & Karypis 2012; Steck's MRF, 2019, also takes its sparsity pattern from
  co-occurrence). G itself is held (float32: 456 MB at the ML-10M shape), but never inverted:
  n systems of m×m instead of one of n×n, and no second and third matrix of G's size (P, B).

`keep` is what the part's budget allows (`MAX_WEIGHTS` in all). Weights are stored as int16
multiples of a scale per target movie (its largest weight / 32,767: finer than float16 for every
weight above 3% of that largest), and every evaluation here scores with the weights serving reads.

A user's item-item scores are the sum of the rows of B of the movies they like
(`recsys.scoring.item_item_scores`); the served score blends it with LightFM's, each z-scored over
the movies (`recsys.scoring.blend`), with weights chosen on the validation split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp

from recsys.parts import ITEM_ITEM_LIKES
from recsys.scoring import blend, mix, standardize
from training import ease, sequence
from training.evaluate import ScoreFn, evaluate
from training.sequence import Transitions

#: At most this many weights are kept in all (4 bytes each with their targets: 4.4 MB), `keep` per movie.
MAX_WEIGHTS = 1_100_000
#: Up to this many movies, EASE's dense inverse (seconds); above it, the neighbourhood regressions.
DENSE_MAX_ITEMS = 5_000
#: λ candidates, chosen by validation ndcg@10 of the item-item model alone.
LAMBDAS = (100.0, 125.0, 150.0, 175.0, 200.0, 250.0, 300.0)
LAMBDAS_LARGE = (200.0, 800.0)
#: Candidates for a, EASE's regression's share of SLIST's system (1: order ignored), chosen with λ.
SHARES_OF_LIKES = (1.0, 0.85, 0.7, 0.55)
SHARES_OF_LIKES_LARGE = (1.0, 0.7)  # each costs a neighbourhood solve
#: How the transitions are built (`training.sequence`), measured on ML-100K's validation split:
#: every user's every transition, up to `DENSE_MAX_ITEMS` movies; above, each user's newest 50.
TRANSITIONS = Transitions(decay=5.0, span=10, window=8)
TRANSITIONS_LARGE = TRANSITIONS._replace(positions=50)
#: Recency decays (in likes; None: every like weighs 1) of a user's scores. Up to `DENSE_MAX_ITEMS`
#: movies, chosen with (a, λ), every pair scored (`choose_setting`); above, where each candidate
#: costs a neighbourhood solve and its scores a pass over the validation users, after (a, λ), which
#: are chosen at `DECAY` (`choose_decay`).
DECAYS = (None, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0)
DECAYS_LARGE = (None, 20.0, 40.0, 80.0)
DECAY = 40.0
#: LightFM's share of the blend, chosen by validation ndcg@10 of the blend (`pick_share`): 1 is
#: LightFM alone, 0 the item-item model alone, so on validation the blend is never more than
#: `SHARE_TOLERANCE` worse than the better of them.
SHARES = (0.0, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Shares whose validation ndcg@10 is within this fraction of the best are taken as equal (`pick_share`).
SHARE_TOLERANCE = 0.01
#: A target movie's largest weight is stored as this many multiples of its scale.
QUANTA = np.iinfo(np.int16).max
#: Movies of G computed, or their neighbourhoods chosen, per block (on a thread each).
BLOCK = 1024


class ItemItem(NamedTuple):
    """B as served: CSR by the liked movie (the source), int16 weights scaled per target.

    Row i lists the movies i points at (`targets`, ascending) and the weights; B[i, j] is
    ``weights * scales[j]``. A user's scores are the sum of the rows of the movies they like.
    """

    indptr: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    scales: np.ndarray
    lam: float
    method: str
    keep: int
    a: float = 1.0  # EASE's regression's share of the system; the transitions' is 1 - a
    decay: float | None = None  # a user's k-th newest like weighs exp(-k / decay) (`sequence.recency`)

    @property
    def recency(self) -> np.ndarray:
        """The weight of a user's k-th newest like in their scores, k = 0..`ITEM_ITEM_LIKES` - 1."""
        return sequence.recency(self.decay)

    @classmethod
    def empty(cls, n_items: int) -> ItemItem:
        """No weights at all: blended with a share of 1, the served model is LightFM alone."""
        nothing = np.zeros(0, np.int64)
        return cls.of(nothing, nothing, np.zeros(0, np.float32), n_items, method="none")

    @classmethod
    def of(
        cls, sources: np.ndarray, targets: np.ndarray, values: np.ndarray, n: int, lam: float = 0.0,
        method: str = "given", keep: int = 0, a: float = 1.0,
    ) -> ItemItem:  # fmt: skip
        """B from its weights as triples (B[sources[k], targets[k]] = values[k]) over `n` movies,
        stored as served: each target's weights as int16 multiples of its largest / `QUANTA`."""
        largest = np.zeros(n, dtype=np.float32)
        np.maximum.at(largest, targets, np.abs(values).astype(np.float32))
        scales = largest / np.float32(QUANTA)
        weights = np.round(values / np.where(scales > 0, scales, 1)[targets]).astype(np.int16)
        nonzero = weights != 0
        sources, targets, weights = sources[nonzero], targets[nonzero], weights[nonzero]
        order = np.lexsort((targets, sources))
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(sources, minlength=n), out=indptr[1:])
        dtype = np.uint16 if n <= np.iinfo(np.uint16).max + 1 else np.int32
        return cls(indptr, targets[order].astype(dtype), weights[order], scales, float(lam), method, keep, float(a))

    @property
    def n_items(self) -> int:
        return int(self.indptr.shape[0] - 1)

    def matrix(self) -> sp.csr_matrix:
        """B as a float32 CSR matrix (source by target), with the values serving reads."""
        n = self.n_items
        values = self.weights.astype(np.float32) * self.scales[self.targets]
        return sp.csr_matrix((values, self.targets, self.indptr), shape=(n, n))

    def describe(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "lambda": self.lam,
            "a": self.a,
            "recency_decay": self.decay,
            "kept_per_movie": self.keep,
            "weights": int(self.targets.shape[0]),
            "density": round(self.targets.shape[0] / max(1, self.n_items**2), 6),
            "dtype": f"{self.weights.dtype}, scaled per movie",
        }


def transitions(n_items: int) -> Transitions:
    """How the transitions of a catalogue of `n_items` movies are built."""
    return TRANSITIONS if n_items <= DENSE_MAX_ITEMS else TRANSITIONS_LARGE


def keep_per_item(n_items: int) -> int:
    return max(1, min(n_items - 1, MAX_WEIGHTS // max(1, n_items)))


def fit(x: sp.csr_matrix, lams: Iterable[float], threads: int = 2) -> dict[float, ItemItem]:
    """The item-item model of the binary likes `x`, order ignored (a = 1), for each λ of `lams`."""
    fitted = fit_settings(gram(x, threads), None, [(1.0, lam) for lam in lams], threads)
    return {lam: model for (_, lam), model in fitted.items()}


Grams = tuple[np.ndarray, np.ndarray]
"""SᵀS and SᵀT of the likes' sequences (`training.sequence.grams`)."""


def fit_settings(
    g: np.ndarray, transitions: Grams | None, settings: Iterable[tuple[float, float]], threads: int = 2
) -> dict[tuple[float, float], ItemItem]:
    """The item-item model for each (a, λ) of `settings`, from G and the transitions' SᵀS and SᵀT
    (needed when some a < 1): SLIST dense up to `DENSE_MAX_ITEMS` movies, pruned; above, each
    movie's regression on its neighbourhood."""
    settings = list(settings)
    if transitions is None and any(a < 1.0 for a, _ in settings):
        raise ValueError("a < 1 needs the transitions' SᵀS and SᵀT")
    n = g.shape[0]
    keep = keep_per_item(n)
    if n <= DENSE_MAX_ITEMS:
        return {(a, lam): _pruned(slist_weights(g, transitions, a, lam), keep, lam, a) for a, lam in settings}
    return _local(g, transitions, neighbourhoods(g, keep, threads), settings, threads)


def slist_weights(g: np.ndarray, transitions: Grams | None, a: float, lam: float) -> np.ndarray:
    """SLIST's dense B (float32, (n, n)): with M = a·G + (1−a)·SᵀS and N = a·G + (1−a)·SᵀT, the
    ridge solution of both regressions at once, ``B = (M + λI)⁻¹ N``, its diagonal then zeroed.

    This is SLIST's closed form without EASE's constraint diag(B) = 0 (the paper's "sr" form). The
    diagonal only ever scores a movie its user liked, which is seen and never ranked, so zeroing it
    changes no ranking; it keeps it out of the pruning and the blend's z-scores. Measured on
    ML-100K's validation split, the constrained form (EASE's at a = 1) scored 0.205 at its best,
    this one 0.214 (a 0.7, λ 200, recency 40).
    """
    p = ease.inverse(_mixed(g, transitions, 0, a), lam)
    b = p @ _mixed(g, transitions, 1, a)
    b[np.diag_indices_from(b)] = 0.0
    weights: np.ndarray = b.astype(np.float32, copy=False)
    return weights


def _mixed(g: np.ndarray, transitions: Grams | None, which: int, a: float) -> np.ndarray:
    """a·G + (1−a)·SᵀS (`which` 0: M) or a·G + (1−a)·SᵀT (1: N), float32; G itself when a = 1."""
    if a >= 1.0 or transitions is None:
        return g
    mixed: np.ndarray = np.multiply(g, np.float32(a))
    mixed += np.float32(1.0 - a) * transitions[which]
    return mixed


def _pruned(b: np.ndarray, keep: int, lam: float, a: float = 1.0) -> ItemItem:
    """The dense B with each column's `keep` weights of largest magnitude kept."""
    n = b.shape[0]
    sources = np.argpartition(-np.abs(b), keep - 1, axis=0)[:keep]  # (keep, n): for each target
    targets = np.broadcast_to(np.arange(n), sources.shape)
    values = b[sources, targets]
    method = f"SLIST (dense), the {keep} largest weights into each movie kept"
    return ItemItem.of(sources.ravel(), targets.ravel(), values.ravel(), n, lam, method, keep, a)


def gram(x: sp.csr_matrix, threads: int = 2) -> np.ndarray:
    """G = XᵀX of the binary likes `x`, dense float32 (exact: counts below 2**24): the Gram matrix
    of no likes grown by all of them (as `grow_gram` grows one). G is additive over users: the Gram matrix of
    all but some users is G minus theirs."""
    n = x.shape[1]
    return _grow(np.zeros((n, n), dtype=np.float32), sp.csr_matrix(x.shape, dtype=np.float32), x, threads)


def grow_gram(g: np.ndarray, x: sp.csr_matrix, more: sp.csr_matrix, threads: int = 2) -> np.ndarray:
    """Turn `g`, the Gram matrix of the likes `x`, into that of ``x + more`` in place, and return it.

    ``(X + D)ᵀ(X + D) - XᵀX = Dᵀ(X + D) + XᵀD``: two products as large as the likes that `more`
    adds and their users' other likes, instead of a whole new Gram matrix (training's splits are
    nested, and each later one adds a tenth to a fifth of the likes). The upper
    triangle is updated, in blocks of `BLOCK` movies on `threads`, and mirrored (G is symmetric:
    two thirds of the time of all of it). `more` must not repeat a like of `x`; counts stay exact
    in float32 (below 2**24).
    """
    return _grow(g, x, more, threads)


def _grow(g: np.ndarray, x: sp.csr_matrix, more: sp.csr_matrix, threads: int) -> np.ndarray:
    x32, d32 = sp.csr_matrix(x, dtype=np.float32), sp.csr_matrix(more, dtype=np.float32)
    dt, xt = d32.T.tocsr(), x32.T.tocsr()
    yc, dc = (x32 + d32).tocsc(), d32.tocsc()
    n = g.shape[0]

    def block(start: int) -> None:
        stop = min(n, start + BLOCK)
        g[:stop, start:stop] += (dt[:stop] @ yc[:, start:stop]).toarray()
        if x32.nnz:
            g[:stop, start:stop] += (xt[:stop] @ dc[:, start:stop]).toarray()

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(block, range(0, n, BLOCK)[::-1]))  # the largest blocks first
    _mirror(g)
    return g


def _mirror(g: np.ndarray) -> None:
    """Copy the upper triangle of the blocks of `BLOCK` movies above the diagonal into the lower."""
    for start in range(BLOCK, g.shape[0], BLOCK):
        g[start : start + BLOCK, :start] = g[:start, start : start + BLOCK].T


def neighbourhoods(g: np.ndarray, m: int, threads: int = 2) -> np.ndarray:
    """For each movie j, the `m` other movies most similar to it by the cosine of their like
    columns, G[i, j] / sqrt(G[i, i] G[j, j]), ascending: (n, m).

    Cosine rather than the raw count, which would fill every neighbourhood with the most liked
    movies: at the ML-10M shape the count's neighbourhoods scored 0.264 validation ndcg@10, the
    cosine's 0.280 (EASE dense, pruned to the same 103 weights per movie: 0.292). Ties at the edge
    of a neighbourhood are broken by numpy's selection, the same every run.
    """
    n = g.shape[0]
    near = np.zeros((n, m), dtype=np.int32)
    scale = 1.0 / np.sqrt(np.maximum(np.diagonal(g), 1.0)).astype(np.float32)

    def block(start: int) -> None:  # rows of G, which is symmetric: contiguous, twice as fast as columns
        stop = min(n, start + BLOCK)
        cosine = np.multiply(g[start:stop], scale[None, :])
        cosine *= scale[start:stop, None]
        cosine[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # never its own neighbour
        near[start:stop] = np.sort(np.argpartition(cosine, n - m, axis=1)[:, n - m :], axis=1)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(block, range(0, n, BLOCK)))
    return near


def _local(
    g: np.ndarray, transitions: Grams | None, near: np.ndarray, settings: list[tuple[float, float]], threads: int = 2
) -> dict[tuple[float, float], ItemItem]:
    """Each movie's ridge regression on its neighbourhood N, ``B[N, j] = (M[N,N] + λI)⁻¹ N[N, j]``
    with M = a·G + (1−a)·SᵀS and N = a·G + (1−a)·SᵀT (`slist_weights`), for each (a, λ).

    The blocks of G (and of SᵀS, SᵀT) are gathered once for every setting, by flat positions
    (`np.take`: half the time of a 2-D fancy index; the gather is most of the cost: 113M scattered
    reads at the ML-10M shape), and solved by Cholesky (M[N,N] + λI is symmetric positive
    definite; two thirds of the time of LU).
    """
    n, m = near.shape
    values = {setting: np.zeros((n, m), dtype=np.float32) for setting in settings}
    ordered = any(a < 1.0 for a, _ in settings)
    diagonal = np.arange(m)

    def solve(start: int) -> None:
        rows = np.arange(start, min(n, start + 256))
        sources = near[rows].astype(np.int64)
        block, column = (sources * n)[:, :, None] + sources[:, None, :], sources * n + rows[:, None]
        gathered, b = np.take(g.reshape(-1), block), np.take(g.reshape(-1), column)[..., None]
        if ordered and transitions is not None:
            ss_block = np.take(transitions[0].reshape(-1), block)
            st_column = np.take(transitions[1].reshape(-1), column)[..., None]
        for a, lam in settings:
            lhs, rhs = gathered * np.float32(a), b * np.float32(a)
            if a < 1.0:
                lhs += ss_block * np.float32(1.0 - a)
                rhs += st_column * np.float32(1.0 - a)
            lhs[:, diagonal, diagonal] += np.float32(lam)
            values[a, lam][rows] = sl.cho_solve((np.linalg.cholesky(lhs), True), rhs)[..., 0]

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(solve, range(0, n, 256)))
    targets = np.repeat(np.arange(n), m)
    method = f"SLIST's regression of each movie on its {m} nearest movies (cosine of the likes)"
    return {(a, lam): ItemItem.of(near.ravel(), targets, v.ravel(), n, lam, method, m, a)
            for (a, lam), v in values.items()}  # fmt: skip


def recent_likes(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, order: np.ndarray, shape: tuple[int, int],
    cap: int = ITEM_ITEM_LIKES, recency: np.ndarray | None = None,
) -> sp.csr_matrix:  # fmt: skip
    """The likes matrix of each user's newest `cap` likes (ties: the later line), as serving takes
    them from the history (newest first: `recsys.artifact.ModelArtifact.newest_likes`), the k-th
    newest weighing ``recency[k]`` (default 1, float32)."""
    oldest_first = sequence.chronological(users, timestamps, order)
    ranked = newest_likes(users[oldest_first], items[oldest_first], shape, cap)
    return weighted(ranked, np.ones(cap, dtype=np.float32) if recency is None else recency)


def newest_likes(
    users: np.ndarray, items: np.ndarray, shape: tuple[int, int], cap: int = ITEM_ITEM_LIKES
) -> sp.csr_matrix:
    """Each user's newest `cap` likes of `users`, `items` (in each user's order of liking:
    `sequence.chronological`), each valued 1 + its rank among them (1: the newest; int32, never
    0), for `weighted` to weigh by any recency."""
    ends = np.flatnonzero(np.r_[users[1:] != users[:-1], True]) if users.size else np.zeros(0, np.int64)
    counts = np.diff(np.r_[-1, ends])
    rank = np.repeat(ends, counts) - np.arange(users.size)  # 0: the user's newest
    kept = rank < cap
    return sp.csr_matrix(((rank[kept] + 1).astype(np.int32), (users[kept], items[kept])), shape=shape)


def weighted(ranked: sp.csr_matrix, recency: np.ndarray) -> sp.csr_matrix:
    """The likes of `newest_likes`, the k-th newest weighing ``recency[k]`` (float32)."""
    return sp.csr_matrix((recency[ranked.data - 1], ranked.indices, ranked.indptr), shape=ranked.shape)


def scorer(likes: sp.csr_matrix, model: ItemItem) -> ScoreFn:
    """Item-item scores of users from their rows of `likes`: (batch,) -> (batch, n_items)."""
    return _scorer(likes, _multiplicand(model))


def _multiplicand(model: ItemItem) -> sp.csr_matrix | np.ndarray:
    """B as scoring multiplies it: up to `DENSE_MAX_ITEMS` movies a dense array (100 MB at most, the
    same weights), as a third of B is kept there and the sparse product took 6× as long (0.1 s a
    pass over ML-100K's validation users, which `choose_setting` makes 196 times)."""
    b = model.matrix()
    return b.toarray() if model.n_items <= DENSE_MAX_ITEMS else b


def _scorer(likes: sp.csr_matrix, b: sp.csr_matrix | np.ndarray) -> ScoreFn:
    if isinstance(b, np.ndarray):
        return lambda users: np.asarray(likes[users] @ b, dtype=np.float32)
    return lambda users: np.asarray((likes[users] @ b).toarray(), dtype=np.float32)


def blend_scorer(lightfm: ScoreFn, item_item: ScoreFn, share: float) -> ScoreFn:
    """The served score: `share` of LightFM's z-score plus the rest of the item-item one."""
    weights = np.array([share, 1.0 - share], dtype=np.float32)
    return lambda users: blend(np.asarray(lightfm(users), dtype=np.float32), item_item(users), weights)


def choose_setting(
    models: dict[tuple[float, float], ItemItem], likes_at: Callable[[np.ndarray], sp.csr_matrix],
    decays: Iterable[float | None], seen: sp.csr_matrix, relevant: sp.csr_matrix, users: np.ndarray | None,
) -> tuple[tuple[float, float], float | None, dict[str, dict[str, float]]]:  # fmt: skip
    """The (a, λ) and recency decay of `decays` whose pair has the best validation ndcg@10 of the
    item-item model alone, and every pair's, keyed ``"a=0.7 λ=200"`` then ``"40.0"`` (`decay_label`);
    `likes_at(recency)` gives the likes weighted by it.

    Chosen together, not one after the other: the decay and λ trade off (a longer memory of a
    user's likes sums more rows of B, which a larger λ shrinks). On ML-100K's validation split the
    best pair, a 0.7, λ 175 and decay 30, scored 0.2156; (a, λ) chosen at decay 40 and then the
    decay, 0.2143."""
    decays = list(decays)
    likes = {decay: likes_at(sequence.recency(decay)) for decay in decays}
    grid = {}
    for key, model in models.items():
        b = _multiplicand(model)
        grid[label(*key)] = {decay_label(decay): round(
            evaluate(_scorer(likes[decay], b), seen, relevant, users=users)["ndcg@10"], 6) for decay in decays}
    key, decay = max(((key, decay) for key in models for decay in decays),
                     key=lambda pair: grid[label(*pair[0])][decay_label(pair[1])])  # fmt: skip
    return key, decay, grid


def label(a: float, lam: float) -> str:
    return f"a={a:g} λ={lam:g}"


def decay_label(decay: float | None) -> str:
    return f"{decay or 'none'}"


def choose_decay(
    model: ItemItem, likes_at: Callable[[np.ndarray], sp.csr_matrix], decays: Iterable[float | None],
    seen: sp.csr_matrix, relevant: sp.csr_matrix, users: np.ndarray | None, known: dict[str, float] | None = None,
) -> tuple[float | None, dict[str, float]]:  # fmt: skip
    """The recency decay of `decays` with the best validation ndcg@10 of `model`, and each one's
    (keyed by `decay_label`); `likes_at(recency)` gives the likes weighted by it. `known`: figures
    already measured on the same users (`choose_setting`'s, by `decay_label`), not scored again."""
    decays, known = list(decays), known or {}
    grid = {decay_label(decay): known[decay_label(decay)] if decay_label(decay) in known else round(
        evaluate(scorer(likes_at(sequence.recency(decay)), model), seen, relevant, users=users)["ndcg@10"], 6)
        for decay in decays}  # fmt: skip
    return max(decays, key=lambda decay: grid[decay_label(decay)]), grid


def choose_share(
    lightfm: ScoreFn, item_item: ScoreFn, seen: sp.csr_matrix, relevant: sp.csr_matrix, users: np.ndarray | None
) -> tuple[float, dict[str, float], float]:
    """LightFM's share of the blend with the best validation ndcg@10, each candidate's, and the
    standard error of the chosen one's (`evaluate`'s ``ndcg@10_se``).

    Both models score the validation users once; each candidate share only mixes those scores.
    """
    if users is None:
        users = np.flatnonzero(np.diff(relevant.indptr) > 0)
    batches = [users[i : i + 512] for i in range(0, users.size, 512)]
    z = [np.concatenate([standardize(model(b)) for b in batches]) for model in (lightfm, item_item)] if batches else []
    grid, errors = {}, {}
    for share in SHARES:
        shares = np.array([share, 1.0 - share], dtype=np.float32)

        def mixed(batch: np.ndarray, shares: np.ndarray = shares) -> np.ndarray:
            at = np.searchsorted(users, batch)  # `blend`, on the scores standardized once
            return mix(z[0][at], z[1][at], shares)

        result = evaluate(mixed, seen, relevant, users=users)
        grid[f"{share:g}"], errors[f"{share:g}"] = round(result["ndcg@10"], 6), result["ndcg@10_se"]
    chosen = pick_share(grid)
    return chosen, grid, round(errors[f"{chosen:g}"], 6)


def pick_share(grid: dict[str, float]) -> float:
    """LightFM's share from each candidate's validation ndcg@10 (keys as ``f"{share:g}"``): the
    smallest whose ndcg@10 is within `SHARE_TOLERANCE` of the best.

    Not simply the best: the curve is flat near its top (at ML-100K 0.186-0.188 from 0 to 0.7),
    so the best is chosen by noise there; LightFM's side is the noisy one (hogwild training, and
    validation's LightFM model is not the one served), the item-item side the same closed form
    every time. Among the shares validation cannot tell apart, the one leaning least on LightFM.
    """
    best = max(grid.values())
    return min(share for share in SHARES if grid[f"{share:g}"] >= best * (1 - SHARE_TOLERANCE))
