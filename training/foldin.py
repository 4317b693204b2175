"""How well a visitor the model never saw is served: strong generalization for the fold-in.

A seeded sample of the evaluated users is left out of a separate fit entirely. Each one's
training-side likes are folded in on that fit's frozen item vectors (`recsys.scoring.fold_in`, the
code the API runs) and their held-out likes are scored, with the same seen movies masked as in the
main evaluation. Under the per-user split that is each user's earliest 80% of likes folded in and
the latest 20% scored. A second, disjoint sample is left out of the same fit to choose the ridge λ
of the fold-in map, so the reported users never choose anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from recsys.scoring import fold_in
from training import itemitem, sequence
from training import model as lfm
from training.evaluate import ScoreFn, evaluate, popularity_scorer

METHOD = (
    "the served blend: LightFM's side a ridge map from the mean of the liked movies' LightFM item vectors to a "
    "user vector, fitted on the trained users, item vectors frozen; the item-item side the liked movies' weights"
)
LAMBDAS = (0.01, 0.1, 1.0, 10.0)
SHARE = 0.1  # of the evaluated users, reported (and as many again to choose the ridge λ)
MAX_USERS = 2000  # each
#: The separate fit is the cost: at most this many positives, from a seeded sample of the other
#: users (ML-100K's 44k all stay; ML-10M keeps about a fifth of its users, which makes its
#: fold-in figure conservative: the trained-in model learned from all of them).
MAX_FIT_POSITIVES = 1_000_000


class ItemItemSide(NamedTuple):
    """What the folded-in blend's item-item side is fitted and scored from: the main split's G and
    (when a < 1) SᵀS and SᵀT, the chosen (a, λ) and recency decay, LightFM's share for trained
    users, and each user's newest training-side likes weighted by recency, as serving weighs a
    visitor's likes given in their order."""

    gram: np.ndarray
    transitions: itemitem.Grams | None
    setting: tuple[float, float]
    decay: float | None
    share: float
    recent: sp.csr_matrix
    sequences_of: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # these users' training-side likes, in order


@dataclass(frozen=True)
class FoldInResult:
    lam: float
    report: dict[str, Any]
    share: float  # LightFM's share of a visitor's blend
    item_item_seconds: float = 0.0  # of the item-item side's fit and the visitors' share


def scorer(item_factors: np.ndarray, item_biases: np.ndarray, likes: sp.csr_matrix, projection: np.ndarray) -> ScoreFn:
    """Scores of every item for users folded in from their rows of `likes`, as serving computes them."""

    def score(users: np.ndarray) -> np.ndarray:
        out = np.empty((users.size, item_factors.shape[0]), dtype=np.float32)
        for r, u in enumerate(users.tolist()):
            liked = likes.indices[likes.indptr[u] : likes.indptr[u + 1]]
            out[r] = item_factors @ fold_in(item_factors, liked, projection) + item_biases
        return out

    return score


def evaluate_fold_in(
    params: lfm.TrainParams,
    features: sp.csr_matrix | None,
    epochs: int,
    train: sp.csr_matrix,
    seen: sp.csr_matrix,
    test: sp.csr_matrix,
    trained_in: tuple[ScoreFn, ScoreFn],
    blend: ItemItemSide,
    progress: bool = False,
) -> FoldInResult:
    """Fold-in, popularity and the trained-in models on the same held-out users: the served blend
    ("fold_in", "trained_in") and LightFM alone ("fold_in_lightfm", "trained_in_lightfm"); and
    LightFM's share of a visitor's blend, chosen on other held-out users.

    `train`, `seen` and `test` are the main split's matrices; `trained_in` scores users with the
    models fitted on all of `train` (so they saw these users' training-side likes): LightFM alone,
    and the served blend. `blend` is what the item-item side is made of (`ItemItemSide`). The
    folded-in blend's item-item side is fitted without the reported users too, so it never saw
    them either: G, SᵀS and SᵀT are sums over users, so theirs are subtracted.
    """
    candidates = np.flatnonzero((np.diff(test.indptr) > 0) & (np.diff(train.indptr) > 0))
    n = int(min(MAX_USERS, max(1, round(SHARE * candidates.size))))
    chosen = np.random.default_rng(params.seed).permutation(candidates)[: 2 * n]
    report_users, tune_users = np.sort(chosen[:n]), np.sort(chosen[n:])
    keep = np.ones(train.shape[0], dtype=np.float32)
    keep[chosen] = 0.0
    counts = np.diff(train.indptr)
    if int(counts[keep > 0].sum()) > MAX_FIT_POSITIVES:
        order = np.random.default_rng(params.seed + 1).permutation(np.flatnonzero(keep > 0))
        within = np.cumsum(counts[order]) <= MAX_FIT_POSITIVES
        keep[order[~within]] = 0.0
    others = sp.csr_matrix(sp.diags(keep) @ train)
    others.eliminate_zeros()
    model, _, _ = lfm.fit(params, others.tocoo(), features, epochs, desc="fold-in", progress=progress)
    _, uf, ib, vf = lfm.representations(model, features)
    maps = {lam: lfm.fold_in_projection(vf, uf, others, lam) for lam in LAMBDAS}
    if tune_users.size:
        ndcg = {
            lam: evaluate(scorer(vf, ib, train, maps[lam]), seen, test, users=tune_users)["ndcg@10"] for lam in LAMBDAS
        }
        lam = max(LAMBDAS, key=lambda v: ndcg[v])
    else:
        lam = LAMBDAS[1]
    # The item-item side is fitted on every training user but the reported ones: they are never in
    # any fit, and the model is not weakened by leaving out the users that choose the map's λ and
    # the visitors' share (a fifth of ML-100K's users in all, which cost its folded-in blend 3%).
    # Its Gram matrix is the main one minus theirs (G is a sum over users). Those choosers' held-out
    # likes are in no fit; their training-side likes are in the item-item side's, which may favour
    # it a little in the choice, never in what is reported. Visitors get their own share: a
    # folded-in LightFM vector is rougher than a trained one, so the item-item side, which needs no
    # vector, may deserve more of their blend than of a trained user's.
    started = time.perf_counter()
    theirs = itemitem.gram(train[report_users], params.threads)
    gram, transitions = blend.gram, blend.transitions
    their_likes = blend.sequences_of(report_users)
    gram -= theirs  # in place, and given back below: exact, counts in float32 (the transitions' to rounding)
    if transitions is not None:
        sequence.add(*transitions, *their_likes, itemitem.transitions(gram.shape[0]), -1.0)
    try:
        item_item = itemitem.fit_settings(gram, transitions, [blend.setting], params.threads)[blend.setting]
    finally:
        gram += theirs
        if transitions is not None:
            sequence.add(*transitions, *their_likes, itemitem.transitions(gram.shape[0]))
    del theirs
    lightfm_folded = scorer(vf, ib, train, maps[lam])
    item_item_scores = itemitem.scorer(blend.recent, item_item._replace(decay=blend.decay))
    trained_share = blend.share
    if tune_users.size:
        share, grid, error = itemitem.choose_share(lightfm_folded, item_item_scores, seen, test, tune_users)
    else:
        share, grid, error = trained_share, {}, None
    item_item_seconds = time.perf_counter() - started
    folded = itemitem.blend_scorer(lightfm_folded, item_item_scores, share)
    results = {
        "fold_in": evaluate(folded, seen, test, users=report_users),
        "trained_in": evaluate(trained_in[1], seen, test, users=report_users),
        "fold_in_lightfm": evaluate(lightfm_folded, seen, test, users=report_users),
        "trained_in_lightfm": evaluate(trained_in[0], seen, test, users=report_users),
        "popularity": evaluate(popularity_scorer(others), seen, test, users=report_users),
    }
    report = {
        "method": METHOD,
        "fit_users": int(np.count_nonzero(np.diff(others.indptr))),
        "lambda": lam,
        "users": int(report_users.size),
        "visitor_shares": {"lightfm": share, "item_item": round(1.0 - share, 6)},
        "visitor_share_chosen_on": {"users": int(tune_users.size), "ndcg@10": grid, "ndcg@10_se": error},
        "models": {name: {k: r[k] for k in ("precision@10", "recall@10", "ndcg@10")} for name, r in results.items()},
    }
    return FoldInResult(lam, report, share, round(item_item_seconds, 1))
