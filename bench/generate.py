"""Write MovieLens-10M-shaped ratings in the GroupLens ml-10m format, seeded.

The real ML-10M cannot be downloaded here; this makes data of its shape so that ingest,
training, the artifact and serving can be measured at that scale through the normal paths:

- 69,878 users, 10,677 movies, 10,000,054 ratings (the real counts), ids with gaps as in the
  real files (users up to 71,567, movies up to 65,133);
- half-star ratings 0.5..5, about half of them >= 4;
- power-law movie popularity and user activity (every user has at least 20 ratings, as in
  the real data);
- a latent-factor structure (taste groups over item factors), so a model has something to learn,
  and genres that follow the item factors;
- ``ratings.dat`` (``user::movie::rating::timestamp``) and ``movies.dat`` (``id::Title (Year)::A|B``).

    python -m bench.generate build/ml-10m-shaped            # the full shape, about a minute
    python -m bench.generate /tmp/small --users 2000 --movies 500 --ratings 100000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

USERS, MOVIES, RATINGS = 69_878, 10_677, 10_000_054
MAX_USER_ID, MAX_MOVIE_ID = 71_567, 65_133
GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
STARS = np.arange(0.5, 5.01, 0.5)
MIN_PER_USER = 20
FACTORS = 16
TASTE_GROUPS = 256
START, END = 822_873_600, 1_231_113_600  # 1996-01-29 .. 2009-01-05, the real data's span


def generate(out: Path, users: int = USERS, movies: int = MOVIES, ratings: int = RATINGS, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    # Latent structure: item factors, taste groups around prototypes, users near their group.
    item_f = rng.normal(size=(movies, FACTORS)).astype(np.float32)
    protos = rng.normal(size=(TASTE_GROUPS, FACTORS)).astype(np.float32)
    group = rng.integers(0, TASTE_GROUPS, size=users)
    user_f = protos[group] + 0.5 * rng.normal(size=(users, FACTORS)).astype(np.float32)

    # Power-law popularity (Zipf-like over a random order) and activity (Pareto, floor 20).
    popularity = 1.0 / np.arange(1, movies + 1) ** 0.9
    popularity = popularity[rng.permutation(movies)]
    activity = MIN_PER_USER + rng.pareto(1.3, size=users) * 40
    activity = np.minimum(activity, movies // 3)
    counts = np.maximum(MIN_PER_USER, np.round(activity * (ratings / activity.sum()))).astype(np.int64)
    counts = _adjust(counts, ratings, rng, movies // 3)

    # Which movies each user rated: sample from the group's distribution, oversampled, then keep
    # each user's first `count` distinct movies.
    affinity = protos @ item_f.T / np.sqrt(FACTORS)
    weights = popularity[None, :] * np.exp(1.5 * affinity)
    cdf = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    user_idx = np.empty(ratings, dtype=np.int32)
    item_idx = np.empty(ratings, dtype=np.int32)
    filled = 0
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(TASTE_GROUPS + 1))
    for g in range(TASTE_GROUPS):
        members = order[bounds[g] : bounds[g + 1]]
        for u in members:
            need = counts[u]
            picked = np.empty(0, dtype=np.int64)
            draw = int(need * 1.6) + 8
            while picked.size < need:
                sample = np.searchsorted(cdf[g], rng.random(draw))
                sample = np.minimum(sample, movies - 1)
                picked = pd.unique(np.concatenate([picked, sample]))
                draw *= 2
            user_idx[filled : filled + need] = u
            item_idx[filled : filled + need] = picked[:need]
            filled += need

    # Ratings: biases + taste agreement + noise, rounded to half stars; about half are >= 4.
    user_bias = rng.normal(0, 0.45, size=users)
    item_bias = rng.normal(0, 0.5, size=movies) + 0.35 * np.log(popularity / popularity.mean())
    taste = np.einsum("ij,ij->i", user_f[user_idx], item_f[item_idx]) / np.sqrt(FACTORS)
    raw = 3.15 + user_bias[user_idx] + 0.5 * item_bias[item_idx] + 0.55 * taste + rng.normal(0, 0.7, size=ratings)
    stars = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)

    # Timestamps: each user active over a span inside the data's window.
    begin = rng.integers(START, END - 86_400 * 30, size=users)
    span = np.minimum(END - begin, (rng.exponential(400, size=users) * 86_400).astype(np.int64) + 3_600)
    ts = begin[user_idx] + (rng.random(ratings) * span[user_idx]).astype(np.int64)

    user_ids = np.sort(rng.choice(np.arange(1, MAX_USER_ID + 1), size=users, replace=False))
    movie_ids = np.sort(rng.choice(np.arange(1, MAX_MOVIE_ID + 1), size=movies, replace=False))
    shuffle = np.lexsort((ts, user_idx))  # the real file is sorted by user
    _write_ratings(out / "ratings.dat", user_ids[user_idx[shuffle]], movie_ids[item_idx[shuffle]],
                   stars[shuffle], ts[shuffle])  # fmt: skip
    _write_movies(out / "movies.dat", movie_ids, item_f, rng)
    stats = {
        "users": users, "movies": movies, "ratings": ratings,
        "positives_share": float((stars >= 4).mean()),
        "top_1pct_movies_share": float(np.sort(np.bincount(item_idx, minlength=movies))[::-1][: movies // 100].sum()
                                       / ratings),
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    return stats


def _adjust(counts: np.ndarray, total: int, rng: np.random.Generator, cap: int) -> np.ndarray:
    """Nudge per-user counts (floor 20, cap `cap`) until they sum to exactly `total`."""
    counts = np.clip(counts, MIN_PER_USER, cap)
    while (diff := total - int(counts.sum())) != 0:
        step = 1 if diff > 0 else -1
        eligible = np.flatnonzero(counts < cap) if step > 0 else np.flatnonzero(counts > MIN_PER_USER)
        chosen = rng.choice(eligible, size=min(abs(diff), eligible.size), replace=False)
        counts[chosen] += step
    return counts


def _write_ratings(path: Path, users: np.ndarray, movies: np.ndarray, stars: np.ndarray, ts: np.ndarray) -> None:
    labels = np.array([f"{s:g}" for s in STARS])  # "5", "4.5": as the real file writes them
    frame = pd.DataFrame({
        "u": users, "m": movies, "r": pd.Categorical.from_codes(np.round(stars * 2).astype(int) - 1, labels), "t": ts,
    })  # fmt: skip
    text = frame.to_csv(sep="\t", header=False, index=False, lineterminator="\n")
    path.write_text(text.replace("\t", "::"))


def _write_movies(path: Path, ids: np.ndarray, item_f: np.ndarray, rng: np.random.Generator) -> None:
    years = rng.integers(1915, 2009, size=ids.size)
    top = np.argsort(-item_f[:, : len(GENRES)], axis=1)
    how_many = rng.integers(1, 4, size=ids.size)
    lines = []
    for i, movie in enumerate(ids):
        genres = "|".join(GENRES[g] for g in sorted(top[i, : how_many[i]]))
        lines.append(f"{movie}::Movie {movie} ({years[i]})::{genres}\n")
    path.write_text("".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write ML-10M-shaped ratings (GroupLens ml-10m format).")
    parser.add_argument("out", type=Path)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--movies", type=int, default=MOVIES)
    parser.add_argument("--ratings", type=int, default=RATINGS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.ratings < args.users * MIN_PER_USER or args.ratings > args.users * (args.movies // 3):
        parser.error(f"--ratings must be between {MIN_PER_USER} and movies/3 per user")
    stats = generate(args.out, args.users, args.movies, args.ratings, args.seed)
    print(f"wrote {args.out}/ratings.dat and movies.dat: {stats}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
