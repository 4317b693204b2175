"""The feedback table of template.yaml, made on a local DynamoDB (the moto server)."""

from __future__ import annotations

from typing import Any

from devstack.template import table

#: The table's name on the local stack (on AWS, CloudFormation names it).
FEEDBACK_TABLE = "recommender-feedback"


def create_feedback_table(client: Any, name: str = FEEDBACK_TABLE) -> str:
    """Create the template's FeedbackTable as `name` (keys, billing, TTL); returns `name`."""
    props = table("FeedbackTable")
    ttl = props.pop("TimeToLiveSpecification")
    client.create_table(TableName=name, **props)
    client.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    return name


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
