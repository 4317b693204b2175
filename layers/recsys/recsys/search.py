"""Title search: folding, the index, the scan, and the closest titles when nothing matches.

Titles are folded (lower case, accents stripped) and joined, most liked first, into one string, so
that a query word is found by one regular-expression scan at C speed instead of a Python loop over
the titles. The index is built from the catalog part on the first search and kept with the model.

A query whose words are in no title is tried again without spaces or punctuation ("starwars",
"wall-e"), and then by trigrams for a typo ("godfater"): the titles sharing most of the query's
letter triples, most liked first among equals. The trigram table is built on the first such miss,
as sorted numpy arrays, so that a query costs a few binary searches and one bincount.
"""

from __future__ import annotations

import bisect
import itertools
import re
import unicodedata
from functools import cached_property
from typing import NamedTuple

import numpy as np


def fold(text: str) -> str:
    """Lower-case and strip accents, so "Misérables" matches "miserables"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_NOT_LETTERS = re.compile(r"[\W_]+")
#: A title is among the closest to a query when it holds at least this share of the query's trigrams.
CLOSE_ENOUGH = 0.5


def compact(text: str) -> str:
    """`fold`ed, without spaces or punctuation: "Star Wars" and "starwars" agree."""
    return _NOT_LETTERS.sub("", fold(text))


def trigrams(key: str) -> np.ndarray:
    """The distinct letter triples of a `compact` key as int64 codes (a shorter key is its own)."""
    grams = {key[i : i + 3] for i in range(max(1, len(key) - 2))} if key else set()
    codes = [sum(ord(c) << (21 * (2 - n)) for n, c in enumerate(g)) for g in grams]
    return np.unique(np.asarray(codes, dtype=np.int64))


class _Joined(NamedTuple):
    """Keys joined by newlines (`text`), where each starts in it, and the keys."""

    text: str
    starts: list[int]
    keys: tuple[str, ...]

    @classmethod
    def of(cls, keys: tuple[str, ...]) -> _Joined:
        return cls("\n".join(keys), [0, *itertools.accumulate(len(k) + 1 for k in keys[:-1])], keys)


class SearchIndex:
    """Folded titles in `ranked` order, joined (`titles`); on the first miss, the same without
    spaces or punctuation (`_compact`) and their trigrams (`_trigrams`)."""

    def __init__(self, keys: tuple[str, ...], ranked: np.ndarray) -> None:
        self.titles, self.ranked = _Joined.of(keys), ranked

    @classmethod
    def build(cls, titles: tuple[str, ...], popularity: np.ndarray) -> SearchIndex:
        """The index of `titles` in the order of `popularity` (item indices, most liked first)."""
        return cls(tuple(fold(titles[i]) for i in popularity.tolist()), popularity)

    def search(self, query: str, limit: int) -> tuple[np.ndarray, bool]:
        """`find`; when that finds nothing, the same without spaces, then the `closest` titles.
        Returns the item indices and whether they match the query (False: only close to it)."""
        hits = self.find(query, limit)
        if hits.size or not fold(query).split():  # found, or the empty query's most liked
            return hits, True
        joined = compact(query)
        if joined:
            hits = self._scan(joined, [joined], limit, self._compact)
            if hits.size:
                return hits, True
        return self.closest(query, limit), False

    def closest(self, query: str, limit: int) -> np.ndarray:
        """Item indices of the titles holding at least `CLOSE_ENOUGH` of the query's trigrams, most
        shared first, then most liked (int64, at most `limit`)."""
        wanted = trigrams(compact(query))
        if wanted.size == 0:
            return np.zeros(0, dtype=np.int64)
        codes, rows = self._trigrams
        lo, hi = np.searchsorted(codes, wanted, side="left"), np.searchsorted(codes, wanted, side="right")
        found = np.concatenate([rows[a:b] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])
        shared = np.bincount(found, minlength=len(self.titles.keys))
        close = np.flatnonzero(shared >= max(1, CLOSE_ENOUGH * wanted.size))
        best = close[np.lexsort((close, -shared[close]))[:limit]]  # ties: the more liked (lower row)
        return self.ranked[best].astype(np.int64)

    @cached_property
    def _compact(self) -> _Joined:
        return _Joined.of(tuple(_NOT_LETTERS.sub("", k) for k in self.titles.keys))

    @cached_property
    def _trigrams(self) -> tuple[np.ndarray, np.ndarray]:
        """Every title's trigram codes, sorted, and the row of each (int32)."""
        per_title = [trigrams(k) for k in self._compact.keys]
        codes = np.concatenate(per_title) if per_title else np.zeros(0, dtype=np.int64)
        rows = np.repeat(np.arange(len(per_title), dtype=np.int32), [g.size for g in per_title])
        order = np.argsort(codes, kind="stable")
        return codes[order], rows[order]

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
        return self._scan(max(words, key=len), words, limit, self.titles)

    def _scan(self, longest: str, words: list[str], limit: int, joined: _Joined) -> np.ndarray:
        prefix: list[int] = []
        other: list[int] = []
        last = -1
        for hit in re.finditer(re.escape(longest), joined.text):
            r = bisect.bisect_right(joined.starts, hit.start()) - 1
            if r == last:
                continue
            last, key = r, joined.keys[r]
            if all(w in key for w in words):
                if key.startswith(words[0]):
                    prefix.append(int(self.ranked[r]))
                    if len(prefix) == limit:
                        break
                elif len(other) < limit:
                    other.append(int(self.ranked[r]))
        return np.asarray((prefix + other)[:limit], dtype=np.int64)
