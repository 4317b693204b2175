"""Visitors' likes, stored in DynamoDB so that the next training learns from them.

The table is keyed by (``visitor_id`` S, ``movie_id`` N). A like is one item::

    {visitor_id, movie_id, liked_at, expires_at}     # seconds since the epoch; expires_at is the TTL
    {..., list, model_version, position}             # a like of a pick the site showed: where it was

and each visitor has one more item, at ``movie_id`` `COUNTER` (-1, which no movie has)::

    {visitor_id, movie_id: -1, likes, version, expires_at}

and, once the site has shown them picks, one at `SHOWN` (-3) that counts them (impressions), an
attribute ``shown:<model version>:<list>`` a count::

    {visitor_id, movie_id: -3, "shown:20261206T031500Z-1a2b3c4d:taste": 40, ..., expires_at}

A count is one ``UpdateItem`` that adds to it (`record_shown`), cheap and outside the likes'
transaction: a request repeated after its answer was lost counts its picks again, and a count
written after the visitor was forgotten trains nothing and expires (training leaves out every
item of a forgotten visitor). Only the serving model's version is counted, so a visitor's item
holds a few attributes a night at most.

Every change is one transaction: the likes' puts and deletes, a put of the counter on the
condition that its ``version`` is still the one read before, and a check that the visitor was not
forgotten. So two requests of the same visitor never interleave, the cap is checked against what
is really stored, and a request that is repeated, or retried after its answer was lost, finds its
likes already there and writes nothing. The count is taken from the visitor's live items each
time, so likes that expired (DynamoDB deletes them up to two days late) stop counting against the
cap when they expire. The cap holds back likes only: a change that does not add one always passes,
so a visitor over a cap that was lowered can still unlike.

Forgetting writes a tombstone at ``movie_id`` `TOMBSTONE` (-2) first, then deletes every other item::

    {visitor_id, movie_id: -2, forgotten_at, expires_at}

A change that read the visitor before the tombstone fails its check and is refused after it
(`ForgottenVisitorError`, 410), so no like can slip in between forget's query and its deletes, and
an idempotency token can never be repeated by a later change of the same id. Training leaves out
every like of a visitor with a tombstone, whatever the scan meets first.

Nothing else is stored about a visitor: the id is a random UUIDv4 the website makes; no address,
user agent or cookie. Training reads the table with `live_likes` and ignores expired items itself.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from recsys import dynamodb
from recsys.dynamodb import DynamoDBError
from recsys.errors import ConfigurationError, FeedbackUnavailableError, ForgottenVisitorError, LimitExceededError

logger = logging.getLogger(__name__)

COUNTER = -1
#: The item that marks a forgotten visitor (see the module's docstring).
TOMBSTONE = -2
#: The item that counts the picks shown to a visitor (see the module's docstring).
SHOWN = -3
#: Transactions of one request before it gives up on a visitor whose items keep changing under it.
ATTEMPTS = 5


class FeedbackSettings(NamedTuple):
    """table : the DynamoDB table; like_cap : likes stored per visitor at most; retention_seconds :
    how long a like is kept (its TTL), counted from when it was made."""

    table: str
    like_cap: int = 500
    retention_seconds: int = 180 * 86400

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FeedbackSettings:
        env = os.environ if env is None else env
        table = env.get("FEEDBACK_TABLE", "").strip()
        if not table:
            raise ConfigurationError("FEEDBACK_TABLE is not set")
        try:
            cap = int(env.get("LIKE_CAP") or 500)
            days = int(env.get("FEEDBACK_RETENTION_DAYS") or 180)
        except ValueError as exc:
            raise ConfigurationError(f"LIKE_CAP and FEEDBACK_RETENTION_DAYS must be whole numbers: {exc}") from None
        if cap < 1 or days < 1:
            raise ConfigurationError("LIKE_CAP and FEEDBACK_RETENTION_DAYS must be at least 1")
        return cls(table, cap, days * 86400)


class Source(NamedTuple):
    """Where a liked movie was shown as a pick: the list, the model's version, its place (1 first)."""

    list: str
    model_version: str
    position: int


class Like(NamedTuple):
    """A visitor's like, and where it was shown when it was a pick; `live_likes` yields one at
    `TOMBSTONE` for a forgotten visitor, and one at `SHOWN` with the counts of shown picks."""

    visitor_id: str
    movie_id: int
    liked_at: int
    source: Source | None = None
    #: at `SHOWN`: picks shown per (model version, list)
    shown: Mapping[tuple[str, str], int] | None = None


class FeedbackStore:
    """The likes of visitors in one table (see the module's docstring), through a DynamoDB client
    with boto3's methods (`recsys.dynamodb.client`)."""

    def __init__(self, client: Any, settings: FeedbackSettings, clock: Callable[[], float] = time.time) -> None:
        self.client, self.settings, self.clock = client, settings, clock

    def change(self, visitor: str, like: Sequence[int], unlike: Sequence[int],
               sources: Mapping[int, Source] | None = None) -> int:  # fmt: skip
        """Store `like` and remove `unlike` for `visitor`, all or nothing: how many likes the visitor
        has then. A new like in `sources` is stored with where it was shown. LimitExceededError
        when added likes would pass the cap (nothing is stored then), ForgottenVisitorError when
        `visitor` was forgotten, FeedbackUnavailableError when the table does not answer."""
        for _ in range(ATTEMPTS):
            now = int(self.clock())
            live, version, forgotten = self._read(visitor, now)
            if forgotten:
                raise ForgottenVisitorError(visitor)
            new = [m for m in dict.fromkeys(like) if m not in live]
            gone = [m for m in dict.fromkeys(unlike) if m in live]
            count = len(live) + len(new) - len(gone)
            if not new and not gone:  # a repeat, or a retry whose first try was stored
                return len(live)
            if new and count > self.settings.like_cap:
                raise LimitExceededError(
                    f"a visitor keeps at most {self.settings.like_cap} likes; {len(live)} are stored and this "
                    f"request adds {len(new) - len(gone)} more. Unlike some first."
                )
            if self._write(visitor, new, gone, version, count, now, sources or {}):
                return count
        raise FeedbackUnavailableError(f"visitor {visitor}: the likes kept changing over {ATTEMPTS} attempts")

    def forget(self, visitor: str) -> int:
        """Refuse every later change of `visitor` (the tombstone), then delete every other item of
        theirs, expired ones and the counter included: how many likes went. Forgetting again
        deletes nothing more and answers 0."""
        table, now = self.settings.table, int(self.clock())
        tombstone = {**self._key(visitor, TOMBSTONE), "forgotten_at": {"N": str(now)},
                     "expires_at": {"N": str(now + self.settings.retention_seconds)}}  # fmt: skip
        self._call("put_item", TableName=table, Item=tombstone)
        movies = [m for item in self._query(visitor, projection="movie_id")
                  if (m := int(item["movie_id"]["N"])) != TOMBSTONE]  # fmt: skip
        for start in range(0, len(movies), 100):  # a transaction holds at most 100 items
            chunk = movies[start : start + 100]
            deletes = [{"Delete": {"TableName": table, "Key": self._key(visitor, m)}} for m in chunk]
            try:
                self._call("transact_write_items", TransactItems=deletes)
            except _Cancelled:  # a conflicting change of the same items: delete them one by one
                for m in chunk:
                    self._call("delete_item", TableName=table, Key=self._key(visitor, m))
        return sum(1 for m in movies if m not in (COUNTER, SHOWN))

    def record_shown(self, visitor: str, shown: Mapping[tuple[str, str], int]) -> int:
        """Add `shown` (picks per (model version, list)) to the visitor's counts: how many picks."""
        if not shown:
            return 0
        names = {f"#s{n}": f"shown:{version}:{kind}" for n, (version, kind) in enumerate(shown)}
        values = {f":s{n}": {"N": str(int(count))} for n, count in enumerate(shown.values())}
        now = int(self.clock())
        self._call(
            "update_item", TableName=self.settings.table, Key=self._key(visitor, SHOWN),
            UpdateExpression=f"ADD {', '.join(f'#s{n} :s{n}' for n in range(len(shown)))} SET expires_at = :e",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={**values, ":e": {"N": str(now + self.settings.retention_seconds)}},
        )  # fmt: skip
        return sum(shown.values())

    def likes(self, visitor: str) -> list[int]:
        """The movies `visitor` likes now (expired likes left out), in id order."""
        return sorted(self._read(visitor, int(self.clock()))[0])

    # -- DynamoDB ---------------------------------------------------------------------------

    def _read(self, visitor: str, now: int) -> tuple[dict[int, int], int | None, bool]:
        """The visitor's live likes (movie: liked_at), the counter's version (None: no counter), and
        whether they were forgotten."""
        live: dict[int, int] = {}
        version, forgotten = None, False
        for item in self._query(visitor):
            movie = int(item["movie_id"]["N"])
            if movie == COUNTER:
                version = int(item["version"]["N"])
            elif movie == TOMBSTONE:
                forgotten = True
            elif movie != SHOWN and int(item["expires_at"]["N"]) > now:
                live[movie] = int(item["liked_at"]["N"])
        return live, version, forgotten

    def _query(self, visitor: str, projection: str | None = None) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.settings.table,
            "KeyConditionExpression": "visitor_id = :v",
            "ExpressionAttributeValues": {":v": {"S": visitor}},
            "ConsistentRead": True,
        }
        if projection:
            request["ProjectionExpression"] = projection
        while True:
            page = self._call("query", **request)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _write(self, visitor: str, new: list[int], gone: list[int], version: int | None, count: int, now: int,
               sources: Mapping[int, Source]) -> bool:  # fmt: skip
        """One transaction: the puts, the deletes and the counter, if the counter's version is still
        `version`. False when another change came first (the caller reads again)."""
        table, expires = self.settings.table, now + self.settings.retention_seconds
        items: list[dict[str, Any]] = [
            {"Put": {"TableName": table, "Item": {
                **self._key(visitor, m), "liked_at": {"N": str(now)}, "expires_at": {"N": str(expires)},
                **_source_attributes(sources.get(m))}}}
            for m in new
        ]  # fmt: skip
        items += [{"Delete": {"TableName": table, "Key": self._key(visitor, m)}} for m in gone]
        counter = {**self._key(visitor, COUNTER), "likes": {"N": str(count)}, "expires_at": {"N": str(expires)},
                   "version": {"N": str((version or 0) + 1)}}  # fmt: skip
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(version)"}
            if version is None
            else {"ConditionExpression": "version = :seen", "ExpressionAttributeValues": {":seen": {"N": str(version)}}}
        )
        items.append({"Put": {"TableName": table, "Item": counter, **condition}})
        items.append({"ConditionCheck": {"TableName": table, "Key": self._key(visitor, TOMBSTONE),
                                         "ConditionExpression": "attribute_not_exists(movie_id)"}})  # fmt: skip
        # the same change on the same version is the same request: DynamoDB applies it once (a
        # forgotten id is never written again, so its tokens never come back)
        token = hashlib.sha256(repr((visitor, version, new, gone)).encode()).hexdigest()[:36]
        try:
            self._call("transact_write_items", TransactItems=items, ClientRequestToken=token)
        except _Cancelled:
            return False
        return True

    def _call(self, operation: str, **request: Any) -> Any:
        """A client call (`recsys.dynamodb.DynamoDBClient`, or boto3's); a conflict becomes
        `_Cancelled`, anything else that fails becomes FeedbackUnavailableError (after the
        client's own retries)."""
        try:
            return getattr(self.client, operation)(**request)
        except DynamoDBError as exc:
            code = exc.code
            cause: Exception = exc
        except Exception as exc:
            if not type(exc).__module__.startswith("botocore."):  # not the client's: a bug, raised as it is
                raise
            response = getattr(exc, "response", None)  # ClientError's; BotoCoreError has none
            code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else type(exc).__name__
            cause = exc
        if code in ("TransactionCanceledException", "TransactionConflictException", "IdempotentParameterMismatch"):
            raise _Cancelled from None
        raise FeedbackUnavailableError(f"{operation}: {code}") from cause

    @staticmethod
    def _key(visitor: str, movie: int) -> dict[str, Any]:
        return {"visitor_id": {"S": visitor}, "movie_id": {"N": str(movie)}}


def _source_attributes(source: Source | None) -> dict[str, Any]:
    if source is None:
        return {}
    return {"list": {"S": source.list}, "model_version": {"S": source.model_version},
            "position": {"N": str(source.position)}}  # fmt: skip


def _source_of(item: Mapping[str, Any]) -> Source | None:
    try:
        return Source(item["list"]["S"], item["model_version"]["S"], int(item["position"]["N"]))
    except (KeyError, ValueError):
        return None


def _shown_of(item: Mapping[str, Any]) -> dict[tuple[str, str], int]:
    """The counts of a `SHOWN` item: (model version, list) -> picks."""
    shown = {}
    for name, value in item.items():
        if name.startswith("shown:") and name.count(":") == 2 and "N" in value:
            _, version, kind = name.split(":")
            shown[version, kind] = int(value["N"])
    return shown


class _Cancelled(Exception):
    """A transaction DynamoDB refused because its condition no longer held."""


def live_likes(client: Any, table: str, now: float) -> Iterator[Like]:
    """Every visitor's live likes in `table`, a page at a time (a full scan), for training: expired
    items and the counters left out, whether or not DynamoDB has deleted them yet, one `Like` at
    `TOMBSTONE` for each forgotten visitor, whose likes the reader must leave out, and one at
    `SHOWN` with the counts of the picks shown to a visitor (`Like.shown`)."""
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "movie_id = :tombstone OR (movie_id <> :counter AND expires_at > :now)",
        "ExpressionAttributeValues": {":counter": {"N": str(COUNTER)}, ":tombstone": {"N": str(TOMBSTONE)},
                                      ":now": {"N": str(int(now))}},
    }
    while True:
        page = client.scan(**request)
        for item in page.get("Items", []):
            movie, expires = int(item["movie_id"]["N"]), int(item["expires_at"]["N"])
            if movie == TOMBSTONE:
                yield Like(item["visitor_id"]["S"], TOMBSTONE, int(item["forgotten_at"]["N"]))
            elif movie == SHOWN and expires > now:
                yield Like(item["visitor_id"]["S"], SHOWN, 0, shown=_shown_of(item))
            elif movie != COUNTER and expires > now:  # the filter again: a table may not filter as asked
                yield Like(item["visitor_id"]["S"], movie, int(item["liked_at"]["N"]), _source_of(item))
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def dynamodb_client() -> Any:
    """The table's client: `recsys.dynamodb`'s with Lambda's credentials, else boto3's."""
    return dynamodb.client()
