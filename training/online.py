"""Online quality: how often the picks the site showed were liked, per model version and list.

The pages count the picks they show (``POST /feedback`` ``shown``) and say where a liked pick was
shown (``picked``: the list, the model version, its place); `recsys.feedback` keeps both with the
visitor's likes. Training reads them in the same scan as the likes (`Tally.watch`) and reports,
for each model version that served picks, and each list:

    like-through = liked picks / picks shown

with a 95% interval. A visitor's picks and likes go together (one visitor who likes much moves
both), so the interval is the ratio estimator's, clustered by visitor: with m visitors, picks n_i
and likes l_i, r = Σl / Σn and

    se(r)² = m / (m − 1) · Σ (l_i − r·n_i)² / (Σn)²

The versions are compared newest against the one before (`Report.change`), each with at least
`MIN_PICKS` picks shown: the difference of their rates with the interval of two independent
samples, and their ratio, which TrainFunction sends as ``LikeThroughRatio`` for the alarm.

What a visitor can do to these figures is bounded as training's screening bounds their likes:
a visitor counts at most `MAX_PICKS_PER_VISITOR` picks per version and list, and no more liked
picks than picks; forgotten visitors, and those screening drops whole (over the like cap, liking
faster than a person), count nothing. Ids cost nothing, so a crowd of them can still move a rate:
these are figures to watch, never a signal that trains or gates a model. No visitor id leaves the
job: the report has counts only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from recsys.feedback import SHOWN, TOMBSTONE, Like

#: Picks per version and list that one visitor counts, at most.
MAX_PICKS_PER_VISITOR = 1000
#: A version is compared with another only when each showed this many picks.
MIN_PICKS = 200
#: Versions reported, newest first.
VERSIONS = 14
Z95 = 1.959964


class Tally:
    """Picks shown and liked picks, per visitor, gathered from the scan that training reads anyway."""

    def __init__(self) -> None:
        self.shown: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)  # (version, list) -> visitor -> picks
        self.liked: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        self.forgotten: set[str] = set()

    def watch(self, likes: Iterable[Like]) -> Iterator[Like]:
        """`likes` as they come (`recsys.feedback.live_likes`), noting shown picks and where liked
        ones were shown; the counts of shown picks are kept here, not passed on."""
        for like in likes:
            if like.movie_id == SHOWN:
                for key, picks in (like.shown or {}).items():
                    self.shown[key][like.visitor_id] = self.shown[key].get(like.visitor_id, 0) + picks
                continue
            if like.movie_id == TOMBSTONE:
                self.forgotten.add(like.visitor_id)
            elif like.source is not None:
                key = (like.source.model_version, like.source.list)
                self.liked[key][like.visitor_id] = self.liked[key].get(like.visitor_id, 0) + 1
            yield like

    def report(self, dropped: Collection[str] = ()) -> dict[str, Any]:
        """The figures of the module's docstring (JSON types); `dropped`: visitors screening left
        out whole, who count nothing here either."""
        out = self.forgotten | set(dropped)
        lists: dict[str, dict[str, Rate]] = defaultdict(dict)
        totals: dict[str, dict[str, tuple[int, int]]] = defaultdict(dict)  # version -> visitor -> every list's
        for (version, kind), picks in self.shown.items():
            liked = self.liked.get((version, kind), {})
            pairs = {v: (min(n, MAX_PICKS_PER_VISITOR), min(liked.get(v, 0), n, MAX_PICKS_PER_VISITOR))
                     for v, n in picks.items() if v not in out and n > 0}  # fmt: skip
            if not pairs:
                continue
            lists[version][kind] = Rate(list(pairs.values()))
            for v, (n, k) in pairs.items():
                before = totals[version].get(v, (0, 0))
                totals[version][v] = (before[0] + n, before[1] + k)
        rows = [{"model_version": version, **Rate(list(totals[version].values())).as_dict(),
                 "lists": {kind: rate.as_dict() for kind, rate in sorted(lists[version].items())}}
                for version in sorted(lists, reverse=True)[:VERSIONS]]  # versions sort by when they were made
        compared = [row for row in rows if row["picks"] >= MIN_PICKS]
        return {
            "what": "liked picks ÷ picks shown, per model version (newest first) and list; 95% intervals clustered "
            "by visitor",
            "versions": rows,
            "change": _change(compared[0], compared[1]) if len(compared) >= 2 else None,
            "min_picks": MIN_PICKS,
            "max_picks_per_visitor": MAX_PICKS_PER_VISITOR,
            "visitors_left_out": len(out),
        }


class Rate:
    """Liked picks over picks shown, from each visitor's (picks, liked) pairs."""

    def __init__(self, pairs: list[tuple[int, int]]) -> None:
        self.pairs = pairs
        self.picks = sum(n for n, _ in pairs)
        self.liked = sum(k for _, k in pairs)
        self.rate = self.liked / self.picks if self.picks else 0.0

    @property
    def se(self) -> float | None:
        m = len(self.pairs)
        if m < 2 or not self.picks:
            return None
        spread = sum((k - self.rate * n) ** 2 for n, k in self.pairs)
        return math.sqrt(m / (m - 1) * spread) / self.picks

    def as_dict(self) -> dict[str, Any]:
        se = self.se
        low, high = (None, None) if se is None else (max(0.0, self.rate - Z95 * se), min(1.0, self.rate + Z95 * se))
        return {"picks": self.picks, "liked": self.liked, "visitors": len(self.pairs),
                "like_through": round(self.rate, 6), "se": _round(se),
                "ci95": None if se is None else [_round(low), _round(high)]}  # fmt: skip


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _change(newer: dict[str, Any], older: dict[str, Any]) -> dict[str, Any]:
    """The newer version's rate against the older's: difference (95% interval) and ratio."""
    difference = newer["like_through"] - older["like_through"]
    se = math.hypot(newer["se"] or 0.0, older["se"] or 0.0)
    low, high = difference - Z95 * se, difference + Z95 * se
    return {
        "newer": newer["model_version"],
        "older": older["model_version"],
        "difference": round(difference, 6),
        "ci95": [round(low, 6), round(high, 6)],
        "ratio": round(newer["like_through"] / older["like_through"], 6) if older["like_through"] else None,
        "verdict": "better" if low > 0 else "worse" if high < 0 else "within noise",
    }
