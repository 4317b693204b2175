"""EASE, the yardstick: a closed-form item-item model (Steck, "Embarrassingly Shallow Autoencoders
for Sparse Data", WWW 2019). It is scored beside LightFM on the same split; it is not served.

With X the binary user-by-item likes and G = XᵀX, the weights are B = I − P·diag(1/diag(P)) with
P = (G + λI)⁻¹, so diag(B) = 0; a user's scores are x_u·B. Its cost is an item-by-item float64
inverse per λ, which bounds the catalogue it is computed for (`MAX_ITEMS`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from training.evaluate import ScoreFn, evaluate

#: float64 G, P and B of 12,000 items take 3.5 GB, and one inverse about a minute on 2 cores;
#: the ML-10M shape (10,677 items) fits. Above it EASE is skipped with a note.
MAX_ITEMS = 12_000
#: λ candidates, chosen by validation ndcg@10 (ML-100K's best is in the middle of the grid).
LAMBDAS = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)
#: On a catalogue this large each candidate costs tens of seconds: fewer of them.
LARGE = 4_000
LAMBDAS_LARGE = (200.0, 800.0, 3200.0)


def gram(x: sp.csr_matrix) -> np.ndarray:
    """XᵀX as a dense float64 array of shape (n_items, n_items)."""
    x64 = x.astype(np.float64)
    return np.asarray((x64.T @ x64).toarray())


def weights(g: np.ndarray, lam: float) -> np.ndarray:
    """EASE's B (float32, shape (n_items, n_items), zero diagonal) from the Gram matrix `g`."""
    if lam <= 0:
        raise ValueError(f"lambda must be positive, got {lam}")
    regularized = g.copy()
    regularized[np.diag_indices_from(regularized)] += lam
    p = np.linalg.inv(regularized)
    b = p / -np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b.astype(np.float32)


def scorer(x: sp.csr_matrix, b: np.ndarray) -> ScoreFn:
    """Scores x_u·B for a batch of user indices: (batch,) -> (batch, n_items)."""
    x32 = sp.csr_matrix(x, dtype=np.float32)
    return lambda users: np.asarray(x32[users] @ b)


def fits(n_items: int) -> bool:
    return n_items <= MAX_ITEMS


def choose_lambda(
    x_fit: sp.csr_matrix, seen: sp.csr_matrix, relevant: sp.csr_matrix, users: np.ndarray | None = None
) -> tuple[float, dict[str, float]]:
    """The λ with the best validation ndcg@10, and every candidate's ndcg@10."""
    g = gram(x_fit)
    grid = LAMBDAS if g.shape[0] <= LARGE else LAMBDAS_LARGE
    results = {}
    for lam in grid:
        ndcg = evaluate(scorer(x_fit, weights(g, lam)), seen, relevant, users=users)["ndcg@10"]
        results[f"{lam:g}"] = round(float(ndcg), 6)  # type: ignore[arg-type]
    best = max(grid, key=lambda lam: results[f"{lam:g}"])
    return best, results
