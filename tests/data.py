"""Data where the right answer is known, written in the GroupLens formats, and a quick trainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recsys.artifact import ModelArtifact
from recsys.store import open_model
from training.cli import main as train_main

GROUPS = 2
USERS_PER_GROUP = 20
ITEMS_PER_GROUP = 12
GENRES = ("Action", "Comedy")


def group_of_item(movie_id: int) -> int:
    return (movie_id - 1) // ITEMS_PER_GROUP


def group_of_user(user_id: int) -> int:
    return (user_id - 1) // USERS_PER_GROUP


def rated_by(user_id: int) -> set[int]:
    """The movies a checkerboard user rated, at any rating (what `write_checkerboard` writes)."""
    g = group_of_user(user_id)
    unseen = g * ITEMS_PER_GROUP + (user_id % ITEMS_PER_GROUP) + 1
    return {
        m
        for m in range(1, GROUPS * ITEMS_PER_GROUP + 1)
        if m != unseen and (group_of_item(m) == g or not (user_id + m) % 3)
    }


def write_checkerboard(folder: Path) -> Path:
    """ml-100k files: users of group g like (rate 5) the movies of group g and rate the others 1.

    User u has not rated movie ``(u % ITEMS_PER_GROUP) + 1`` of its own group: that movie is what a
    good model must recommend first.
    """
    rows, t = [], 880000000
    for u in range(1, GROUPS * USERS_PER_GROUP + 1):
        g = group_of_user(u)
        unseen = g * ITEMS_PER_GROUP + (u % ITEMS_PER_GROUP) + 1
        for m in range(1, GROUPS * ITEMS_PER_GROUP + 1):
            if m == unseen:
                continue
            rating = 5 if group_of_item(m) == g else 1
            if group_of_item(m) != g and (u + m) % 3:
                continue  # rate only some of the other group's movies
            t += 37
            rows.append(f"{u}\t{m}\t{rating}\t{t}")
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    items = []
    for m in range(1, GROUPS * ITEMS_PER_GROUP + 1):
        flags = ["0"] * 19
        flags[1 if group_of_item(m) == 0 else 5] = "1"  # Action or Comedy in the ml-100k genre order
        items.append(f"{m}|Movie {m} (199{m % 10})|01-Jan-1995||http://x|" + "|".join(flags))
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    return folder


def train(ratings: Path, model_uri: str, *extra: str) -> int:
    return train_main(
        ["--ratings", str(ratings), "--model-uri", model_uri, "--components", "8", "--epochs", "30",
         "--no-early-stopping", "--learning-rate", "0.05", "--threads", "1", "--quiet", *extra]
    )  # fmt: skip


def published(store: Path) -> tuple[dict[str, Any], ModelArtifact]:
    """A local store's pointer, and the whole model it serves."""
    return json.loads((store / "latest.json").read_text()), open_model(str(store))
