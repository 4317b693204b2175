"""LightFM training (with early stopping) and the export to the serving artifact."""

from __future__ import annotations

import datetime as dt
import platform
import sys
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from typing import Any

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM
from tqdm import tqdm

from recsys.artifact import ModelArtifact, genre_neighbours, nearest_neighbours, unit_rows
from training.cleaning import Interactions
from training.datasets import Movies
from training.evaluate import ScoreFn, evaluate
from training.itemitem import ItemItem
from training.split import to_matrix

ITEM_FEATURES = ("none", "genres", "genres+decade")


@dataclass(frozen=True)
class TrainParams:
    loss: str = "warp"
    components: int = 64
    epochs: int | None = None  # None: from the update budget (see `resolve_epochs`)
    learning_rate: float = 0.02
    item_alpha: float = 0.0
    user_alpha: float = 0.0
    max_sampled: int = 10
    item_features: str = "none"
    threads: int = 1
    seed: int = 42
    early_stopping: bool = True
    patience: int = 10
    smoothing: int = 5
    min_epochs: int | None = None  # None: 3/4 of `epochs`
    min_rating: float = 4.0
    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    split: str = "auto"  # "per-user" or "global" once chosen (see training.split)
    ease: str = "auto"  # score the EASE baseline beside LightFM: "auto" (small catalogues), "on", "off"


@dataclass
class Catalogue:
    """Metadata aligned with the model's item indices."""

    titles: list[str]
    years: np.ndarray
    genre_names: list[str]
    item_genres: np.ndarray  # uint32 bit masks


def catalogue(item_ids: np.ndarray, movies: Movies | None) -> Catalogue:
    n = item_ids.size
    titles = [f"Movie {i}" for i in item_ids.tolist()]
    years = np.zeros(n, dtype=np.int16)
    genre_lists: list[list[str]] = [[] for _ in range(n)]
    if movies is not None:
        pos = np.searchsorted(item_ids, movies.ids)
        found = (pos < n) & (item_ids[np.minimum(pos, n - 1)] == movies.ids)
        for m in np.flatnonzero(found).tolist():
            p = int(pos[m])
            titles[p], years[p], genre_lists[p] = movies.titles[m], movies.years[m], movies.genres[m]
    names = sorted({g for gs in genre_lists for g in gs})
    if len(names) > 32:
        raise ValueError(f"{len(names)} genres do not fit a 32-bit mask")
    bit = {g: 1 << b for b, g in enumerate(names)}
    masks = np.array([sum(bit[g] for g in set(gs)) for gs in genre_lists], dtype=np.uint32)
    return Catalogue(titles, years, names, masks)


def item_features(kind: str, cat: Catalogue) -> sp.csr_matrix | None:
    """LightFM item features: identity plus genre (and decade) indicators, rows summing to 1.

    With "none" LightFM uses its own identity features. Returns a CSR matrix of shape
    (n_items, n_items + n_genres [+ n_decades]), float32.
    """
    if kind not in ITEM_FEATURES:
        raise ValueError(f"item features must be one of {', '.join(ITEM_FEATURES)}, got {kind!r}")
    if kind == "none":
        return None
    n = cat.item_genres.size
    blocks = [sp.identity(n, dtype=np.float32, format="csr")]
    bits = ((cat.item_genres[:, None] >> np.arange(len(cat.genre_names), dtype=np.uint32)) & 1).astype(np.float32)
    blocks.append(sp.csr_matrix(bits))
    if kind == "genres+decade":
        decades = np.where(cat.years > 0, cat.years // 10 * 10, 0)
        values = np.unique(decades)
        onehot = (decades[:, None] == values[None, :]) & (decades[:, None] > 0)
        blocks.append(sp.csr_matrix(onehot.astype(np.float32)))
    features = sp.hstack(blocks, format="csr", dtype=np.float32)
    norms = np.asarray(features.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / norms) @ features, dtype=np.float32)


def new_model(p: TrainParams) -> LightFM:
    return LightFM(
        no_components=p.components,
        loss=p.loss,
        learning_rate=p.learning_rate,
        item_alpha=p.item_alpha,
        user_alpha=p.user_alpha,
        max_sampled=p.max_sampled,
        random_state=np.random.RandomState(p.seed),
    )


# Positive pairs one training run may visit, in all its epochs: 80 epochs of ML-100K's ~56k
# positives, where 60-80 epochs at lr 0.02 measured best. A dataset 100x larger gets the same
# number of updates in fewer epochs (never fewer than MIN_AUTO_EPOCHS), which keeps three fits
# of ML-10M within minutes; pass --epochs to trade time for quality.
UPDATE_BUDGET = 4_500_000
MAX_AUTO_EPOCHS, MIN_AUTO_EPOCHS = 80, 6


def resolve_epochs(p: TrainParams, positives: int) -> TrainParams:
    """`p` with `epochs` and `min_epochs` set: as given, or from the update budget."""
    epochs = p.epochs or int(np.clip(round(UPDATE_BUDGET / max(positives, 1)), MIN_AUTO_EPOCHS, MAX_AUTO_EPOCHS))
    min_epochs = p.min_epochs or max(1, round(0.75 * epochs))
    return replace(p, epochs=epochs, min_epochs=min(min_epochs, epochs))


def fit(
    p: TrainParams,
    interactions: sp.coo_matrix,
    features: sp.csr_matrix | None,
    epochs: int,
    validation: tuple[sp.csr_matrix, sp.csr_matrix] | None = None,
    desc: str = "train",
    progress: bool = True,
    sample_weight: sp.coo_matrix | None = None,
) -> tuple[LightFM, int, list[float]]:
    """Train for up to `epochs`; with `validation` (seen, relevant), stop after `patience` epochs
    without progress.

    Progress is the moving average of validation ndcg@10 over the last `smoothing` epochs: on
    small data the per-epoch value jumps by more than a real improvement, and stopping on the
    raw value picks too few epochs. No stop, and no best, comes before `min_epochs`.

    Returns the model, the best epoch count (1-based; `epochs` without validation) and the
    validation ndcg@10 of each epoch run.
    """
    model = new_model(p)
    min_epochs = resolve_epochs(replace(p, epochs=epochs), 1).min_epochs  # as given, or 3/4 of `epochs`
    history: list[float] = []
    best, best_epoch = -1.0, epochs
    bar = tqdm(range(epochs), desc=desc, unit="epoch", disable=not progress, file=sys.stderr)
    for epoch in bar:
        model.fit_partial(
            interactions, item_features=features, sample_weight=sample_weight, epochs=1, num_threads=p.threads
        )
        if validation is None:
            continue
        seen, relevant = validation
        value = evaluate(lightfm_scorer(model, features), seen, relevant, users=sample_users(relevant, p.seed))
        history.append(round(value["ndcg@10"], 6))
        smoothed = float(np.mean(history[-p.smoothing :]))
        if epoch + 1 >= min_epochs and smoothed > best:
            best, best_epoch = smoothed, epoch + 1
        bar.set_postfix({"val ndcg@10": f"{history[-1]:.4f}", "smoothed": f"{smoothed:.4f}", "best": best_epoch})
        if epoch + 1 >= min_epochs and epoch + 1 - best_epoch >= p.patience:
            break
    bar.close()
    return model, best_epoch, history


def sample_users(matrix: sp.csr_matrix, seed: int, limit: int = 5000) -> np.ndarray | None:
    """A seeded sample of `limit` rows of `matrix` that hold something (sorted), or None for all of them."""
    users = np.flatnonzero(np.diff(matrix.indptr) > 0)
    if users.size <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(users, size=limit, replace=False))


def representations(model: LightFM, features: sp.csr_matrix | None) -> tuple[np.ndarray, ...]:
    """(user_biases, user_factors, item_biases, item_factors) as float32 arrays."""
    ub, uf = model.get_user_representations()
    ib, vf = model.get_item_representations(features)
    return tuple(np.ascontiguousarray(a, dtype=np.float32) for a in (ub, uf, ib, vf))


def lightfm_scorer(model: LightFM, features: sp.csr_matrix | None) -> ScoreFn:
    ub, uf, ib, vf = representations(model, features)
    return lambda users: uf[users] @ vf.T + ib[None, :] + ub[users, None]


def build_artifact(
    model: LightFM,
    features: sp.csr_matrix | None,
    data: Interactions,
    cat: Catalogue,
    provenance: dict[str, Any],
    item_item: ItemItem,
    share: float,
    fold_in_lambda: float = 0.1,
    visitor_share: float | None = None,
    published_users: int | None = None,
    refold_weight: float = 0.0,
) -> ModelArtifact:
    """The serving artifact of a model trained on all of `data`, blended with `item_item` (fitted
    on the same likes), LightFM's share of the blend being `share` for trained users and
    `visitor_share` (default: `share`) for visitors; a known user's new likes refold their vector
    by `refold_weight` (`recsys.scoring.refold`).

    Only the first `published_users` users (default: all) are in it: the site's visitors, who
    train as users with the highest ids (`training.visitors`), shape the movies' vectors, the
    item-item weights and the popularity counts, and have no vector, history or id of their own
    in what is served.
    """
    ub, uf, ib, vf = representations(model, features)
    visitor = share if visitor_share is None else visitor_share
    unit = unit_rows(vf)
    liked = data.positives(float(provenance["params"]["min_rating"]))
    users, items = data.users[liked], data.items[liked]
    n_all = data.user_ids.size
    n_users = n_all if published_users is None else published_users
    counts = np.bincount(items, minlength=data.item_ids.size).astype(np.int32)
    popularity = np.lexsort((np.arange(counts.size), -counts)).astype(np.int32)
    # A never-liked movie is nobody's neighbour; its own list comes from its genres.
    has_likes = counts > 0
    neighbours, neighbour_sims = nearest_neighbours(unit, eligible=has_likes)
    cold = np.flatnonzero(~has_likes)
    neighbours[cold], neighbour_sims[cold] = genre_neighbours(
        cat.item_genres, popularity, has_likes, cold, neighbours.shape[1]
    )
    # history: by user, newest first (ties: later line first); the published users' only
    fold_in_likes = to_matrix(users, items, (n_all, vf.shape[0]))
    mine = np.flatnonzero(liked)[users < n_users]
    users, items = data.users[mine], data.items[mine]
    order = np.lexsort((-data.order[mine], -data.timestamps[mine], users))
    indptr = _indptr(users, n_users)
    item_dtype = np.int16 if data.item_ids.size <= np.iinfo(np.int16).max else np.int32
    days = np.clip(data.timestamps[mine][order] // 86400, 0, np.iinfo(np.uint16).max).astype(np.uint16)
    # the rest of what each user has seen: rated below the threshold, by user then item
    low = np.flatnonzero(~liked)
    low = low[data.users[low] < n_users]
    low_users, low_items = data.users[low], data.items[low]
    low_order = np.lexsort((low_items, low_users))
    return ModelArtifact(
        user_ids=data.user_ids[:n_users],
        item_ids=data.item_ids,
        user_factors=uf[:n_users],
        user_biases=ub[:n_users],
        item_factors=vf,
        item_biases=ib,
        item_item_indptr=item_item.indptr,
        item_item_targets=item_item.targets.astype(item_dtype),
        item_item_weights=item_item.weights,
        item_item_scales=item_item.scales,
        item_item_recency=item_item.recency,
        blend_shares=np.array([share, 1.0 - share], dtype=np.float32),
        visitor_shares=np.array([visitor, 1.0 - visitor], dtype=np.float32),
        neighbours=neighbours,
        neighbour_sims=neighbour_sims,
        popularity=popularity,
        like_counts=counts,
        history_indptr=indptr,
        history_items=items[order].astype(item_dtype),
        history_ratings=np.round(data.ratings[mine][order] * 2).astype(np.uint8),
        history_days=days,
        unliked_indptr=_indptr(low_users, n_users),
        unliked_items=low_items[low_order].astype(item_dtype),
        titles=tuple(cat.titles),
        years=cat.years.astype(np.int16),
        genre_names=tuple(cat.genre_names),
        item_genres=cat.item_genres,
        provenance=provenance,
        fold_in_map=fold_in_projection(vf, uf, fold_in_likes, fold_in_lambda),
        refold_weight=float(refold_weight),
    )


def fold_in_projection(
    item_factors: np.ndarray, user_factors: np.ndarray, likes: sp.csr_matrix, lam: float
) -> np.ndarray:
    """The ridge map from a user's mean liked-item vector (and a constant) to their user vector.

    Fitted on every user with a like: X is (n, d + 1), Y is (n, d), W = (XᵀX + λI)⁻¹XᵀY. Returns
    float32 of shape (d + 1, d), as `recsys.scoring.fold_in` takes it.
    """
    counts = np.diff(likes.indptr)
    active = np.flatnonzero(counts > 0)
    sums = np.asarray(likes[active] @ item_factors.astype(np.float64))
    x = np.hstack([sums / counts[active, None], np.ones((active.size, 1))])
    y = user_factors[active].astype(np.float64)
    w = np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)
    return w.astype(np.float32)


def _indptr(users: np.ndarray, n_users: int) -> np.ndarray:
    """CSR row pointers (int64, shape (n_users + 1,)) of rows grouped by user."""
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return indptr


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("numpy", "scipy", "rectools-lightfm", "pandas"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def params_dict(p: TrainParams) -> dict[str, object]:
    return asdict(p)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)
