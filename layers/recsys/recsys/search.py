"""Title search: folding, the index, and the scan.

Titles are folded (lower case, accents stripped) and joined, most liked first, into one string, so
that a query word is found by one regular-expression scan at C speed instead of a Python loop over
the titles. The index is built from the catalog part on the first search and kept with the model.
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from typing import NamedTuple

import numpy as np


def fold(text: str) -> str:
    """Lower-case and strip accents, so "Misérables" matches "miserables"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class SearchIndex(NamedTuple):
    """Folded titles in `ranked` order, joined by newlines (`text`); where each starts in it."""

    text: str
    starts: list[int]
    keys: tuple[str, ...]
    ranked: np.ndarray

    @classmethod
    def build(cls, titles: tuple[str, ...], popularity: np.ndarray) -> SearchIndex:
        """The index of `titles` in the order of `popularity` (item indices, most liked first)."""
        keys = tuple(fold(titles[i]) for i in popularity.tolist())
        starts = [0, *itertools.accumulate(len(k) + 1 for k in keys[:-1])]
        return cls("\n".join(keys), starts, keys, popularity)

    def find(self, query: str, limit: int) -> np.ndarray:
        """Item indices whose titles contain every word of `query`: those that start with its first
        word first, then the rest, each most liked first. An empty query gives the most liked.

        Scans the joined keys for the longest word and checks the other words on the titles it
        hits. The first `limit` prefix matches end the scan, since every later match ranks below
        them; other matches fill up what is left.

        Returns
        -------
        ndarray of int64, shape (at most limit,)
        """
        words = fold(query).split()
        if not words:
            return self.ranked[:limit].astype(np.int64)
        prefix: list[int] = []
        other: list[int] = []
        last = -1
        for hit in re.finditer(re.escape(max(words, key=len)), self.text):
            r = bisect.bisect_right(self.starts, hit.start()) - 1
            if r == last:
                continue
            last, key = r, self.keys[r]
            if all(w in key for w in words):
                if key.startswith(words[0]):
                    prefix.append(int(self.ranked[r]))
                    if len(prefix) == limit:
                        break
                elif len(other) < limit:
                    other.append(int(self.ranked[r]))
        return np.asarray((prefix + other)[:limit], dtype=np.int64)
