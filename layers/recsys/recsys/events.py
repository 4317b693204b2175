"""The site's own users' events (likes, unlikes, ratings), sent by the site's backend through the
signed ``POST /events``; served at once and learned by the next training.

The table has its own key space, apart from the visitors' likes (`recsys.feedback`): these ids are
the ratings file's users, sent by a trusted, signed caller, kept longer, and read on every
personalized request, while the visitors' table is written by anyone and read only by training.
Two tables keep those rules apart in IAM: the public FeedbackFunction cannot write a known user's
events, and the functions that read events cannot read visitors.

It is keyed by (``user_id`` N, ``movie_id`` N), with a local secondary index ``by_time`` on
``at``. One item per user and movie holds the **latest** event for it::

    {user_id, movie_id, kind, rating?, at, expires_at}   # at: ms since the epoch; expires_at: the TTL (s)

A put is conditional on the stored event being no newer (``at <= :at``): an older event that
arrives late, or a retry, never overwrites a newer one, and a retry of the same event writes the
same item again. So a request can be retried as it is.

Reading a user's events is one query of ``by_time``, newest first, at most `READ_LIMIT` items:
bounded whatever the user did. Forgetting puts a tombstone at ``movie_id`` `TOMBSTONE` (-2)::

    {user_id, movie_id: -2, kind: "forget", at}          # no TTL: the record that they asked

then deletes every other item. Readers ignore what is older than the tombstone (an event whose put
raced the deletes included), and training leaves out every rating of the user older than it, the
ratings file's too: the next model holds no trace of them. Events after it count, as a new start.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol

from recsys import dynamodb
from recsys.dynamodb import DynamoDBError
from recsys.errors import ConfigurationError, EventsUnavailableError, InvalidRequestError

logger = logging.getLogger(__name__)

#: The item that marks a forgotten user (see the module's docstring).
TOMBSTONE = -2
#: Events one read returns at most, newest first: a bounded read, whatever the user did.
READ_LIMIT = 1000
#: How far in the future an event's time may be (clock skew between the site and AWS).
FUTURE_SLACK_S = 300
INDEX = "by_time"

EventKind = Literal["like", "unlike", "rating"]


class EventsSettings(NamedTuple):
    """table : the DynamoDB table; retention_seconds : how long an event is kept (its TTL), counted
    from its time."""

    table: str
    retention_seconds: int = 365 * 86400

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EventsSettings | None:
        """The settings, or None when ``EVENTS_TABLE`` is not set (a stack without events)."""
        env = os.environ if env is None else env
        table = env.get("EVENTS_TABLE", "").strip()
        if not table:
            return None
        try:
            days = int(env.get("EVENTS_RETENTION_DAYS") or 365)
        except ValueError:
            raise ConfigurationError("EVENTS_RETENTION_DAYS must be a whole number") from None
        if days < 1:
            raise ConfigurationError("EVENTS_RETENTION_DAYS must be at least 1")
        return cls(table, days * 86400)


class Event(NamedTuple):
    """One event: `at` in ms since the epoch; `rating` only for kind "rating"."""

    movie_id: int
    kind: str
    at: int
    rating: float | None = None

    def liked(self, min_rating: float) -> bool:
        """Whether the event leaves the movie liked: a like, or a rating of at least `min_rating`
        (training's threshold for a positive)."""
        return self.kind == "like" or (self.kind == "rating" and (self.rating or 0) >= min_rating)


class Recent(NamedTuple):
    """A user's latest events, newest first, one per movie, none older than their tombstone;
    `forgotten_at` (ms) when they asked to be forgotten, else None."""

    events: tuple[Event, ...]
    forgotten_at: int | None = None


class Recorded(NamedTuple):
    stored: list[int]
    stale: list[int]


def parse_time(text: str, now: float, retention_seconds: int) -> int:
    """An ISO 8601 time with its offset (``2026-12-06T13:00:00Z``) as ms since the epoch, or
    InvalidRequestError: no offset, more than `FUTURE_SLACK_S` ahead of `now`, or older than the
    retention (it would expire as it is stored)."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequestError(f"{text!r} is not an ISO 8601 time, e.g. 2026-12-06T13:00:00Z") from None
    if when.tzinfo is None:
        raise InvalidRequestError(f"{text!r} has no offset: say Z for UTC, or +hh:mm")
    seconds = when.timestamp()
    if seconds > now + FUTURE_SLACK_S:
        raise InvalidRequestError(f"{text!r} is in the future")
    if seconds <= now - retention_seconds:
        raise InvalidRequestError(f"{text!r} is older than the events' retention of {retention_seconds // 86400} days")
    return int(seconds * 1000)


class EventLog:
    """The events of the site's users in one table (see the module's docstring), through a DynamoDB
    client with boto3's methods (`recsys.dynamodb.client`)."""

    def __init__(self, client: Any, settings: EventsSettings, clock: Callable[[], float] = time.time) -> None:
        self.client, self.settings, self.clock = client, settings, clock

    def record(self, user_id: int, events: Sequence[Event]) -> Recorded:
        """Store each event unless a newer one of the same movie is stored: the movies stored, and
        those whose stored event is newer (stale: nothing changed for them). Oldest first, so the
        latest of one movie in a request wins."""
        table = self.settings.table
        stored: list[int] = []
        stale: list[int] = []
        for event in sorted(events, key=lambda e: e.at):
            item = {
                **self._key(user_id, event.movie_id), "kind": {"S": event.kind}, "at": {"N": str(event.at)},
                "expires_at": {"N": str(event.at // 1000 + self.settings.retention_seconds)},
                **({"rating": {"N": repr(float(event.rating))}} if event.rating is not None else {}),
            }  # fmt: skip
            try:
                self._call("put_item", TableName=table, Item=item,
                           ConditionExpression="attribute_not_exists(#at) OR #at <= :at",
                           ExpressionAttributeNames={"#at": "at"},
                           ExpressionAttributeValues={":at": {"N": str(event.at)}})  # fmt: skip
            except _Refused:
                stale.append(event.movie_id)
                continue
            stored.append(event.movie_id)
        return Recorded(list(dict.fromkeys(stored)), [m for m in dict.fromkeys(stale) if m not in stored])

    def forget(self, user_id: int) -> tuple[int, int]:
        """Put the tombstone, then delete every other item of the user: how many events went, and
        the tombstone's time (ms)."""
        table, now = self.settings.table, int(self.clock() * 1000)
        tombstone = {**self._key(user_id, TOMBSTONE), "kind": {"S": "forget"}, "at": {"N": str(now)}}
        self._call("put_item", TableName=table, Item=tombstone)
        request: dict[str, Any] = {
            "TableName": table, "KeyConditionExpression": "user_id = :u", "ProjectionExpression": "movie_id",
            "ExpressionAttributeValues": {":u": {"N": str(user_id)}}, "ConsistentRead": True,
        }  # fmt: skip
        deleted = 0
        for item in self._pages("query", request):
            movie = int(item["movie_id"]["N"])
            if movie != TOMBSTONE:
                self._call("delete_item", TableName=table, Key=self._key(user_id, movie))
                deleted += 1
        return deleted, now

    def recent(self, user_id: int, limit: int = READ_LIMIT) -> Recent:
        """One query: the user's latest `limit` events, newest first (`Recent`)."""
        page = self._call(
            "query", TableName=self.settings.table, IndexName=INDEX, KeyConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"N": str(user_id)}}, ScanIndexForward=False, Limit=limit,
        )  # fmt: skip
        now = self.clock()
        events: list[Event] = []
        for item in page.get("Items", []):
            event = _event(item)
            if event.movie_id == TOMBSTONE:
                return Recent(tuple(events), event.at)
            if "expires_at" not in item or int(item["expires_at"]["N"]) > now:  # DynamoDB deletes up to 2 days late
                events.append(event)
        return Recent(tuple(events))

    # -- DynamoDB ---------------------------------------------------------------------------

    def _pages(self, operation: str, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        while True:
            page = self._call(operation, **request)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _call(self, operation: str, **request: Any) -> Any:
        """A client call; a failed condition becomes `_Refused`, any other failure
        EventsUnavailableError (after the client's own retries)."""
        try:
            return getattr(self.client, operation)(**request)
        except DynamoDBError as exc:
            code, cause = exc.code, exc
        except Exception as exc:
            if not type(exc).__module__.startswith("botocore."):  # not the client's: a bug, raised as it is
                raise
            response = getattr(exc, "response", None)
            code = response.get("Error", {}).get("Code", "") if isinstance(response, dict) else type(exc).__name__
            cause = exc  # type: ignore[assignment]
        if code == "ConditionalCheckFailedException":
            raise _Refused from None
        raise EventsUnavailableError(f"{operation}: {code}") from cause

    @staticmethod
    def _key(user_id: int, movie: int) -> dict[str, Any]:
        return {"user_id": {"N": str(user_id)}, "movie_id": {"N": str(movie)}}


class _Refused(Exception):
    """A put DynamoDB refused because a newer event of the movie is stored."""


def _event(item: Mapping[str, Any]) -> Event:
    rating = item.get("rating")
    return Event(int(item["movie_id"]["N"]), item["kind"]["S"], int(item["at"]["N"]),
                 float(rating["N"]) if rating else None)  # fmt: skip


def all_events(client: Any, table: str, now: float) -> Iterator[tuple[int, Event]]:
    """Every user's live events in `table`, a page at a time (a full scan), for training: (user id,
    event), tombstones included (kind "forget"), expired events left out."""
    request: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**request)
        for item in page.get("Items", []):
            if "expires_at" in item and int(item["expires_at"]["N"]) <= now:
                continue
            yield int(item["user_id"]["N"]), _event(item)
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class EventReader(Protocol):
    """What serving reads a user's events from: an `EventLog`, or a read of one already started."""

    def recent(self, user_id: int) -> Recent: ...


class ReadAhead:
    """One user's events, read on a thread of its own while the caller loads the model (the cold
    path: the query's round trip hides under the model's load, instead of adding to it); `recent`
    waits for it. The warm path reads when asked, with no thread (`read_for`)."""

    def __init__(self, log: EventLog, user_id: int) -> None:
        self.log, self.user_id = log, user_id
        self._answer: Recent | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="events-read-ahead", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self._answer = self.log.recent(self.user_id)
        except BaseException as exc:  # re-raised in the caller's thread, by `recent`
            self._error = exc

    def recent(self, user_id: int) -> Recent:
        if user_id != self.user_id:
            return self.log.recent(user_id)
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._answer is not None
        return self._answer


def read_for(log: EventLog | None, user_id: int, cold: bool) -> EventReader | None:
    """What serving reads `user_id`'s events from: on the `cold` path a read already under way
    (`ReadAhead`), else `log` itself (None without an events table)."""
    if log is None:
        return None
    return ReadAhead(log, user_id) if cold else log


#: What the serving read may take, its retry included: past it, the answer is the model's alone.
READ_DEADLINE_S = 0.2
_serving: dict[tuple[str, ...], EventLog | None] = {}


def serving_log() -> EventLog | None:
    """The log that RecommendFunction and HistoryFunction read, with a short deadline: made on
    first use, and again only if the environment names another table or endpoint."""
    key = tuple(os.environ.get(name, "") for name in ("EVENTS_TABLE", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"))
    if key not in _serving:
        _serving[key] = event_log(READ_DEADLINE_S)
    return _serving[key]


def event_log(deadline_s: float | None = None, env: Mapping[str, str] | None = None) -> EventLog | None:
    """The events table's log on a client of its own, or None without ``EVENTS_TABLE``. With
    `deadline_s` the client gives up after that long, retries included (the serving read)."""
    env = os.environ if env is None else env
    settings = EventsSettings.from_env(env)
    if settings is None:
        return None
    client = dynamodb.client(env)
    if deadline_s is not None and isinstance(client, dynamodb.DynamoDBClient):
        client = client._replace(deadline_s=deadline_s, timeout=deadline_s, attempts=2)
    return EventLog(client, settings)
