"""Many visitors liking and unliking at once, through a DynamoDB that fails part of the time: every
acknowledged change is in the table, nothing is stored twice, and each counter is exact.

The store is moto's, behind `tests.load.DynamoProxy`, which answers 500 to a share of the requests
before they reach moto, and to a share after (the write happened, the answer is lost: the case a
retry must not double). Each visitor is a client of its own, as each Lambda container is, and
sends its changes one after another, repeating one until it is acknowledged, as the site does.
"""

from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from devstack.dynamodb import create_feedback_table
from recsys import service
from recsys.errors import FeedbackUnavailableError
from recsys.feedback import COUNTER, FeedbackSettings, FeedbackStore
from recsys.schemas import Feedback
from recsys.store import open_model
from tests.load import DynamoProxy

pytestmark = pytest.mark.integration

VISITORS = 30
CHANGES = 20


def test_no_acknowledged_like_is_lost_and_none_is_stored_twice(moto_endpoint: str, model_store: Path) -> None:
    # GIVEN a feedback table behind a proxy that fails a quarter of the requests
    moto = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    table = create_feedback_table(moto, f"load-{uuid.uuid4().hex[:12]}")
    proxy = DynamoProxy(moto_endpoint, fail_before=0.15, fail_after=0.10)
    model = open_model(str(model_store), ("catalog",))
    movies = model.item_ids.tolist()
    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10)

    def visit(seed: int) -> tuple[str, set[int], int]:
        """One visitor's session: changes sent in order, each repeated until acknowledged."""
        rng = random.Random(seed)
        client = boto3.client("dynamodb", endpoint_url=proxy.endpoint, region_name="us-east-1", config=config,
                              aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        store = FeedbackStore(client, FeedbackSettings(table, like_cap=500))
        who, liked, refused = str(uuid.uuid4()), set(), 0
        for _ in range(CHANGES):
            like = rng.sample(movies, rng.randint(1, 4))
            unlike = rng.sample(sorted(liked), min(len(liked), rng.randint(0, 2)))
            feedback = Feedback(who, tuple(like), tuple(unlike))
            for _attempt in range(50):
                try:
                    service.store_feedback(model, store, feedback)  # acknowledged
                    break
                except FeedbackUnavailableError:
                    refused += 1  # a 503: the site keeps it and sends it again
            else:
                raise AssertionError("a change was never acknowledged")
            liked = (liked | set(like)) - set(unlike)
        return who, liked, refused

    # WHEN 30 visitors make 20 changes each, 16 at a time
    with ThreadPoolExecutor(max_workers=16) as pool:
        sessions = list(pool.map(visit, range(VISITORS)))
    proxy.close()
    # THEN the proxy did fail requests both ways, and some changes were refused and sent again
    assert proxy.failed["before"] > 100 and proxy.failed["after"] > 100, proxy.failed
    assert sum(refused for _, _, refused in sessions) > 0
    # AND each visitor's stored likes are exactly what their acknowledged changes made, once each,
    # with the counter saying how many
    for who, liked, _ in sessions:
        items = moto.query(TableName=table, KeyConditionExpression="visitor_id = :v", ConsistentRead=True,
                           ExpressionAttributeValues={":v": {"S": who}})["Items"]  # fmt: skip
        stored = [int(i["movie_id"]["N"]) for i in items if int(i["movie_id"]["N"]) != COUNTER]
        counter = next(i for i in items if int(i["movie_id"]["N"]) == COUNTER)
        assert sorted(stored) == sorted(liked) and int(counter["likes"]["N"]) == len(liked), who
