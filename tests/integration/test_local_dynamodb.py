"""The local DynamoDB (`devstack.dynamodb.patch_moto` over moto): a cancelled transaction restores
exactly the items it named, as moto's own whole-table restore does, without copying the table, and
without erasing what was written to other items meanwhile; a query answers from its partition
alone, with moto's order and pages."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.dynamodb import create_feedback_table

pytestmark = pytest.mark.integration


@pytest.fixture
def table(moto_endpoint: str) -> tuple[Any, str, Any]:
    """A client, a fresh feedback table of 200 items, and moto's own object for that table."""
    from moto.dynamodb.models import dynamodb_backends

    client = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    name = create_feedback_table(client, f"tx-{uuid.uuid4().hex[:12]}")
    for movie in range(200):
        client.put_item(TableName=name, Item=item("other", movie, 1))
    return client, name, dynamodb_backends["123456789012"]["us-east-1"].tables[name]


def item(visitor: str, movie: int, version: int) -> dict[str, Any]:
    return {"visitor_id": {"S": visitor}, "movie_id": {"N": str(movie)}, "version": {"N": str(version)}}


def every_item(client: Any, name: str) -> list[tuple[str, int, int]]:
    found = client.scan(TableName=name, ConsistentRead=True)["Items"]
    return sorted((i["visitor_id"]["S"], int(i["movie_id"]["N"]), int(i["version"]["N"])) for i in found)


def test_a_cancelled_transaction_restores_its_own_items_and_nothing_else(table: tuple[Any, str, Any]) -> None:
    client, name, moto_table = table
    # GIVEN a visitor's counter at version 1 and one of their likes
    client.put_item(TableName=name, Item=item("v", -1, 1))
    client.put_item(TableName=name, Item=item("v", 5, 1))
    before = every_item(client, name)
    # WHEN a transaction puts a new like, deletes the old one, and fails its counter's condition
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": item("v", 6, 1)}},
            {"Delete": {"TableName": name, "Key": {"visitor_id": {"S": "v"}, "movie_id": {"N": "5"}}}},
            {"Put": {"TableName": name, "Item": item("v", -1, 2), "ConditionExpression": "version = :seen",
                     "ExpressionAttributeValues": {":seen": {"N": "7"}}}},
        ])  # fmt: skip
    # THEN DynamoDB's answer is moto's, naming the failed condition
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    reasons = [r.get("Code") for r in cancelled.value.response.get("CancellationReasons", [])]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    # AND every item is as it was: the put undone, the deleted like back, the counter untouched
    assert every_item(client, name) == before
    # AND the table is the same object: it was never copied whole (moto put a copy in its place)
    from moto.dynamodb.models import dynamodb_backends

    assert dynamodb_backends["123456789012"]["us-east-1"].tables[name] is moto_table


def test_a_write_to_another_item_made_during_a_cancelled_transaction_survives(
    table: tuple[Any, str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, name, moto_table = table
    # GIVEN another visitor's write that lands while a transaction is under way (moto runs the
    # operations one by one: the write is made when the transaction reaches its second item)
    real_get = moto_table.get_item
    landed: list[bool] = []

    def get_item(*args: Any, **kwargs: Any) -> Any:
        if not landed and len(args) > 1 and str(args[1].value) == "2":
            landed.append(True)
            moto_table.put_item(item("someone-else", 9, 1))
        return real_get(*args, **kwargs)

    monkeypatch.setattr(moto_table, "get_item", get_item)
    with pytest.raises(ClientError):
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": name, "Item": item("v", 1, 1)}},
            {"Put": {"TableName": name, "Item": item("v", 2, 1), "ConditionExpression": "attribute_exists(version)"}},
        ])  # fmt: skip
    # THEN the other visitor's write is there (a whole-table restore erased it), and the cancelled one is not
    assert landed and ("someone-else", 9, 1) in every_item(client, name)
    assert not [x for x in every_item(client, name) if x[0] == "v"]


def test_a_query_reads_its_partition_alone_in_order_and_by_pages(table: tuple[Any, str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from collections import defaultdict

    client, name, moto_table = table
    # GIVEN a visitor's 7 items among the table's 200 others
    for movie in (5, -1, 30, 2, 11, 8, 400):
        client.put_item(TableName=name, Item=item("v", movie, 1))

    class Watched(defaultdict):  # type: ignore[type-arg]
        """moto's partitions, noting each listing of all of them (moto's query lists them all)."""

        listed = 0

        def values(self) -> Any:
            Watched.listed += 1
            return super().values()

    monkeypatch.setattr(moto_table, "items", Watched(dict, moto_table.items))
    # WHEN it is queried a page of 3 at a time
    pages, start = [], None
    while True:
        request: dict[str, Any] = {"TableName": name, "KeyConditionExpression": "visitor_id = :v", "Limit": 3,
                                   "ExpressionAttributeValues": {":v": {"S": "v"}}, "ConsistentRead": True}  # fmt: skip
        if start:
            request["ExclusiveStartKey"] = start
        page = client.query(**request)
        pages.append([int(i["movie_id"]["N"]) for i in page["Items"]])
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    # THEN the pages hold exactly that partition, in range-key order, as DynamoDB pages it
    assert [m for p in pages for m in p] == [-1, 2, 5, 8, 11, 30, 400] and pages[0] == [-1, 2, 5]
    # AND no query listed the other partitions
    assert Watched.listed == 0
