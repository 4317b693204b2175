"""Numpy-only scoring kernels: the per-request hot path.

No lightfm and no scipy here: a Lambda function imports this with numpy alone.
"""

from __future__ import annotations

import numpy as np


def user_scores(
    user_vector: np.ndarray, user_bias: float, item_factors: np.ndarray, item_biases: np.ndarray
) -> np.ndarray:
    """LightFM's score of every item for one user.

    Parameters
    ----------
    user_vector : ndarray of float32, shape (d,)
    user_bias : float
    item_factors : ndarray of float32, shape (n_items, d)
    item_biases : ndarray of float32, shape (n_items,)

    Returns
    -------
    ndarray of float32, shape (n_items,)
        A fresh array (callers may mask it in place).
    """
    scores: np.ndarray = item_factors @ user_vector
    scores += item_biases
    scores += np.float32(user_bias)
    return scores


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` highest scores, best first.

    Entries equal to ``-inf`` are treated as masked out and never returned, so the result may be
    shorter than `k`. Equal scores are ordered by index, so the result is deterministic.

    Parameters
    ----------
    scores : ndarray of float, shape (n,)
    k : int
        At least 1.

    Returns
    -------
    ndarray of int64, shape (min(k, number of finite entries),)
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n = scores.shape[0]
    if k < n:
        candidates = np.argpartition(-scores, k - 1)[:k]
        # argpartition leaves ties at the boundary to chance: widen to every entry tied with the
        # k-th best, so the index order below can break them deterministically.
        kth = scores[candidates].min()
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(n)
    candidates = candidates[np.isfinite(scores[candidates]) | (scores[candidates] > 0)]
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order[:k]].astype(np.int64, copy=False)


def fold_in(item_factors: np.ndarray, liked: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """A user vector for someone the model was not trained on, from the items they like.

    The mean of the liked items' vectors, mapped into the space of trained user vectors by
    `projection`: a ridge regression that training fits from each trained user's mean liked-item
    vector (plus a constant) to that user's own LightFM vector. The item vectors stay frozen, so
    the visitor is scored exactly as a trained user would be: ``bias_i + u · v_i``.

    Parameters
    ----------
    item_factors : ndarray of float32, shape (n_items, d)
    liked : ndarray of int, shape (n,)
        Item indices, at least one (callers pass unique ones).
    projection : ndarray of float32, shape (d + 1, d)
        Rows 0..d-1 map the mean vector; row d is the constant.

    Returns
    -------
    ndarray of float32, shape (d,)
    """
    if liked.size == 0:
        raise ValueError("fold_in needs at least one liked item")
    mean = item_factors[liked].mean(axis=0, dtype=np.float32)
    vector: np.ndarray = mean @ projection[:-1] + projection[-1]
    return vector


def item_item_scores(
    indptr: np.ndarray, targets: np.ndarray, weights: np.ndarray, liked: np.ndarray, n_items: int
) -> np.ndarray:
    """The item-item model's score of every item for someone who likes `liked`: the sum of the
    liked items' rows of the sparse weights (CSR by liked item).

    Parameters
    ----------
    indptr : ndarray of int, shape (n_items + 1,)
    targets : ndarray of int, shape (n_weights,)
    weights : ndarray of float16 or float32, shape (n_weights,)
    liked : ndarray of int, shape (n,)
        Item indices (callers pass unique ones); none gives all zeros.
    n_items : int

    Returns
    -------
    ndarray of float32, shape (n_items,)
    """
    rows = rows_of(indptr, liked)
    # float16 rows are widened once gathered: numpy emulates float16 arithmetic, slowly
    gathered = weights[rows].astype(np.float32, copy=False)
    scores: np.ndarray = np.bincount(targets[rows], weights=gathered, minlength=n_items).astype(np.float32)
    return scores


def rows_of(indptr: np.ndarray, liked: np.ndarray) -> np.ndarray:
    """The positions, row after row, of the CSR rows `liked` of a matrix with row pointers `indptr`."""
    starts, stops = indptr[liked], indptr[liked + 1]
    lengths = stops - starts
    rows: np.ndarray = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    return rows


def blend(lightfm: np.ndarray, item_item: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """The served score: each model's scores z-scored over the items (along the last axis), mixed by
    `shares` (LightFM's, the item-item model's). A model whose scores are all equal adds nothing.

    Works on one user's scores (shape (n_items,)) and on a batch (shape (users, n_items)) alike:
    training evaluates the same arithmetic that serving runs. Returns float32.
    """
    return mix(standardize(lightfm), standardize(item_item), shares)


def mix(lightfm_z: np.ndarray, item_item_z: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """`blend` of scores already standardized (training mixes one user's twice for every share)."""
    out: np.ndarray = np.float32(shares[0]) * lightfm_z + np.float32(shares[1]) * item_item_z
    return out


def standardize(scores: np.ndarray) -> np.ndarray:
    """Scores z-scored along the last axis (mean 0, standard deviation 1; all equal: all 0), float32.

    The mean and deviation are accumulated in float64, the scores shifted and scaled in float32;
    one user's scores (1-D, the request path) and a batch's rows (training) come out the same.
    """
    if scores.ndim == 1:
        mean, std = scores.mean(dtype=np.float64), scores.std(dtype=np.float64)
        one: np.ndarray = (scores - np.float32(mean)) * np.float32(1.0 / std if std > 0 else 0.0)
        return one
    means = scores.mean(axis=-1, keepdims=True, dtype=np.float64)
    stds = scores.std(axis=-1, keepdims=True, dtype=np.float64)
    scale = np.divide(1.0, stds, out=np.zeros_like(stds), where=stds > 0).astype(np.float32)
    z: np.ndarray = (scores - means.astype(np.float32)) * scale
    return z
