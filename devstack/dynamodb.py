"""The tables of template.yaml (the visitors' likes, the users' events), made on a local DynamoDB
(the moto server)."""

from __future__ import annotations

from typing import Any

from devstack.template import table

#: The table's name on the local stack (on AWS, CloudFormation names it).
FEEDBACK_TABLE = "recommender-feedback"
EVENTS_TABLE = "recommender-events"


def create_feedback_table(client: Any, name: str = FEEDBACK_TABLE) -> str:
    """Create the template's FeedbackTable as `name` (keys, billing, TTL); returns `name`."""
    return _create(client, "FeedbackTable", name)


def create_events_table(client: Any, name: str = EVENTS_TABLE) -> str:
    """Create the template's EventsTable as `name` (keys, its index, billing, TTL); returns `name`."""
    return _create(client, "EventsTable", name)


def _create(client: Any, logical_id: str, name: str) -> str:
    props = table(logical_id)
    ttl = props.pop("TimeToLiveSpecification")
    client.create_table(TableName=name, **props)
    client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return name


def patch_moto() -> None:
    """The two shims the local stack needs under load (each documented below). Idempotent."""
    isolate_transactions()
    query_one_partition()


def isolate_transactions() -> None:
    """Make moto's DynamoDB roll a cancelled transaction back by restoring only the items it touched.

    moto 5.2.5 (`DynamoDBBackend.transact_write_items`) deep-copies every table a transaction names
    before it starts, and when the transaction is cancelled, puts the copies back in place of the
    tables. That costs a copy of the whole table per transaction: 300 ``POST /feedback`` of 48 likes
    took ``make demo`` from 0.3 GB to 19 GB. And it erases every write that another request made
    to the table meanwhile: DynamoDB isolates transactions, so nothing else a test does is lost there.

    Here: before the transaction, a deep copy of each item it names (by key; None where absent);
    moto's own whole-table copy becomes the table itself (its restore is then a no-op); and when
    moto raises, each item is put back as it was, in reverse order. The fix for moto itself is the
    same change inside the method (docs/RELIABILITY.md, "The local DynamoDB"). Idempotent.
    """
    import copy

    import moto.dynamodb.models as models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "isolated", False):
        return

    class CopyingAllButTables:
        """moto's module-level `copy`, except that a Table "copy" is the table itself."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(x: Any, memo: Any = None) -> Any:
            return x if isinstance(x, Table) else copy.deepcopy(x, memo)

    def touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]]:
        """(table, hash key, range key, a deep copy of the item or None) for each item named."""
        out = []
        for entry in transact_items:
            op: dict[str, Any] = next(iter(entry.values()), {})
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op["Item"] if "Item" in op else op.get("Key", {})
            try:
                hash_key = DynamoType(key[table.hash_key_attr])
                range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            except KeyError:
                continue  # no key: moto refuses the operation before writing anything
            out.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
        return out

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        before = touched(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(before):
                if item is None:
                    table.delete_item(hash_key, range_key)
                elif range_key is None:
                    table.items[hash_key] = item
                else:
                    table.items[hash_key][range_key] = item
            raise

    transact_write_items.isolated = True  # type: ignore[attr-defined]
    setattr(models, "copy", CopyingAllButTables())  # noqa: B010 - a module attribute moto does not export
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def query_one_partition() -> None:
    """Make moto's DynamoDB answer a table query from the queried partition alone.

    moto 5.2.5 (`Table.query`, no index) builds its candidates as ``[item for item in
    self.all_items() if item.hash_key == hash_key]``, and `all_items` sorts every item of the table:
    each query costs a sort of the whole table, about 0.5 s at 45,000 likes, which made the feedback
    API's per-visitor read the bottleneck of an attack test. Here, while a table query runs on this
    thread, `all_items` returns the queried partition's items in range-key order: the same items in
    the same order as the filtered sort. A query of a local secondary index (the events' ``by_time``)
    reads the same partition, which moto then filters and sorts by the index's key (75 ms per query
    at 4,000 events without this). Scans and global indexes are untouched. Idempotent.
    """
    import threading

    from moto.dynamodb.models.table import Table

    if getattr(Table.query, "one_partition", False):
        return
    original_query, original_all_items = Table.query, Table.all_items
    local = threading.local()

    def all_items(self: Any) -> Any:
        key = getattr(local, "partition", None)
        if key is None or not self.range_key_attr:
            return original_all_items(self)
        return sorted(self.items.get(key, {}).values(), key=lambda item: item.range_key)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        hash_key = kwargs.get("hash_key", args[0] if args else None)
        index = kwargs.get("index_name", args[7] if len(args) > 7 else None)
        if index is not None:  # a local secondary index shares the table's partitions; a global one does not
            conditions = dict(kwargs.get("hash_key_conditions") or [])
            local_index = index in {i.name for i in self.indexes or []}
            hash_key = conditions.get(self.hash_key_attr, hash_key) if local_index else None
        local.partition = hash_key
        try:
            return original_query(self, *args, **kwargs)
        finally:
            local.partition = None

    query.one_partition = True  # type: ignore[attr-defined]
    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query  # type: ignore[method-assign]
