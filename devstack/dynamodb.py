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
