"""EASE, the yardstick: a closed-form item-item model (Steck, "Embarrassingly Shallow Autoencoders
for Sparse Data", WWW 2019). It is scored beside LightFM on the same split; it is not served.

With X the binary user-by-item likes and G = XᵀX, the weights are B = I − P·diag(1/diag(P)) with
P = (G + λI)⁻¹, so diag(B) = 0; a user's scores are x_u·B. Its cost is an item-by-item float64
inverse per λ, which bounds the catalogue it is computed for (`MAX_ITEMS`).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from training.evaluate import ScoreFn, evaluate

#: Measured on this project's 2-core machine at the ML-10M shape (10,677 items): a float32
#: Cholesky inverse takes 10.5 s (np.linalg.inv in float64: 49 s), G, P and B about 1.4 GB, and
#: the whole baseline (two validation candidates, the final weights, the scoring) 96 s, a third
#: of the 300 s training budget. Both grow with the cube and the square of the items. By default
#: EASE runs up to `AUTO_MAX_ITEMS` (ML-1M's 3,706 movies cost seconds); `--ease` asks for it up
#: to `MAX_ITEMS` (about 15 s and 1.7 GB per candidate at 12,000), and above that it never runs.
AUTO_MAX_ITEMS = 5_000
MAX_ITEMS = 12_000
#: λ candidates, chosen by validation ndcg@10 (ML-100K's best is in the middle of the grid).
LAMBDAS = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)
#: On a catalogue this large each candidate costs seconds to tens of seconds: fewer of them
#: (ML-10M's validation picked 800 of 200, 800 and 3200).
LARGE = 4_000
LAMBDAS_LARGE = (400.0, 1600.0)


def gram(x: sp.csr_matrix) -> np.ndarray:
    """XᵀX as a dense float32 array of shape (n_items, n_items) (exact: counts below 2**24)."""
    x32 = sp.csr_matrix(x, dtype=np.float32)
    return np.asarray((x32.T @ x32).toarray(), dtype=np.float32)


def weights(g: np.ndarray, lam: float) -> np.ndarray:
    """EASE's B (float32, shape (n_items, n_items), zero diagonal) from the Gram matrix `g`.

    G + λI is symmetric positive definite, so P comes from its Cholesky factor (LAPACK potrf and
    potri): half the work of a general inverse, in float32 (relative error about 1e-6 at 10,677
    items, far below what changes a ranking).
    """
    p = inverse(g, lam)
    b = p / -np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    weights: np.ndarray = b.astype(np.float32, copy=False)
    return weights


def inverse(g: np.ndarray, lam: float) -> np.ndarray:
    """(G + λI)⁻¹ of the symmetric positive semi-definite `g`, float32, by its Cholesky factor."""
    if lam <= 0:
        raise ValueError(f"lambda must be positive, got {lam}")
    regularized = np.array(g, dtype=np.float32)
    regularized[np.diag_indices_from(regularized)] += lam
    factor, _ = scipy.linalg.cho_factor(regularized, lower=False, overwrite_a=True, check_finite=False)
    upper, info = scipy.linalg.lapack.spotri(factor, lower=False)
    if info != 0:
        raise ValueError(f"G + {lam:g} I is not positive definite (LAPACK info {info})")
    p: np.ndarray = np.triu(upper) + np.triu(upper, 1).T  # potri fills one triangle
    return p


def scorer(x: sp.csr_matrix, b: np.ndarray) -> ScoreFn:
    """Scores x_u·B for a batch of user indices: (batch,) -> (batch, n_items)."""
    x32 = sp.csr_matrix(x, dtype=np.float32)
    return lambda users: np.asarray(x32[users] @ b)


def skipped(n_items: int, mode: str) -> str | None:
    """Why EASE is not scored for this catalogue under `mode` ("auto", "on" or "off"), or None."""
    if mode == "off":
        return "--no-ease"
    if n_items > MAX_ITEMS:
        return f"{n_items:,} movies, above EASE's memory limit of {MAX_ITEMS:,}"
    if mode == "auto" and n_items > AUTO_MAX_ITEMS:
        return f"{n_items:,} movies: above {AUTO_MAX_ITEMS:,} it costs minutes of training (--ease runs it)"
    return None


def choose_lambda(
    x_fit: sp.csr_matrix, seen: sp.csr_matrix, relevant: sp.csr_matrix, users: np.ndarray | None = None
) -> tuple[float, dict[str, float]]:
    """The λ with the best validation ndcg@10, and every candidate's ndcg@10."""
    g = gram(x_fit)
    grid = LAMBDAS if g.shape[0] <= LARGE else LAMBDAS_LARGE
    results = {}
    for lam in grid:
        ndcg = evaluate(scorer(x_fit, weights(g, lam)), seen, relevant, users=users)["ndcg@10"]
        results[f"{lam:g}"] = round(ndcg, 6)
    best = max(grid, key=lambda lam: results[f"{lam:g}"])
    return best, results
