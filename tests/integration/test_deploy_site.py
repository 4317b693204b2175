"""`make deploy`'s site step against a moto server: stack outputs → bucket upload → invalidation."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import boto3
import pytest

from devstack.template import FRONTEND
from scripts import deploy_site

pytestmark = pytest.mark.integration

API_URL = "https://abc123.execute-api.us-east-1.amazonaws.com/Prod/"


@pytest.fixture
def stack(moto_endpoint: str) -> dict[str, str]:
    os.environ["AWS_ENDPOINT_URL"] = moto_endpoint
    cloudfront = boto3.client("cloudfront")
    distribution = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": uuid.uuid4().hex,
            "Comment": "site",
            "Enabled": True,
            "Origins": {"Quantity": 1, "Items": [{"Id": "s3", "DomainName": "site.s3.amazonaws.com",
                                                  "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
            "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "redirect-to-https",
                                     "MinTTL": 0, "ForwardedValues": {"QueryString": False,
                                                                      "Cookies": {"Forward": "none"}},
                                     "TrustedSigners": {"Enabled": False, "Quantity": 0}},
        }
    )["Distribution"]  # fmt: skip
    name = f"site-{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {"WebsiteBucket": {"Type": "AWS::S3::Bucket"}},
        "Outputs": {
            "WebsiteBucket": {"Value": {"Ref": "WebsiteBucket"}},
            "ApiUrl": {"Value": API_URL},
            "DistributionId": {"Value": distribution["Id"]},
            "WebsiteUrl": {"Value": f"https://{distribution['DomainName']}"},
            "ModelUri": {"Value": "s3://models/recommender"},
        },
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
    return {"stack": name, "distribution": distribution["Id"]}


def test_upload_puts_the_site_with_config_from_the_outputs_and_invalidates(
    stack: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy_site.main(["--stack", stack["stack"]]) == 0
    outputs = deploy_site.stack_outputs(boto3.client("cloudformation"), stack["stack"])
    s3 = boto3.client("s3")
    bucket = outputs["WebsiteBucket"]
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    expected = {p.relative_to(FRONTEND).as_posix() for p in FRONTEND.rglob("*") if p.is_file()} | {"config.js"}
    assert keys == expected
    config = s3.get_object(Bucket=bucket, Key="config.js")
    assert f'export const API_URL = "{API_URL}";' in config["Body"].read().decode()
    assert config["CacheControl"] == "no-cache"
    index = s3.get_object(Bucket=bucket, Key="index.html")
    assert index["ContentType"] == "text/html" and index["Body"].read() == (FRONTEND / "index.html").read_bytes()
    assert s3.head_object(Bucket=bucket, Key="js/api.js")["ContentType"] == "text/javascript"
    assert s3.head_object(Bucket=bucket, Key="css/site.css")["CacheControl"] == "public, max-age=300"
    invalidations = boto3.client("cloudfront").list_invalidations(DistributionId=stack["distribution"])
    assert invalidations["InvalidationList"]["Quantity"] == 1
    assert outputs["WebsiteUrl"] in capsys.readouterr().out


def test_output_prints_one_stack_output(stack: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert deploy_site.main(["--stack", stack["stack"], "--output", "ModelUri"]) == 0
    assert capsys.readouterr().out.strip() == "s3://models/recommender"


def test_a_local_config_js_is_never_uploaded_over_the_generated_one(stack: dict[str, str], tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html>")
    (site / "config.js").write_text('export const API_URL = "http://127.0.0.1:3000";')  # left by `make demo`
    bucket = f"site-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    assert deploy_site.upload_site(s3, bucket, API_URL, site) == ["config.js", "index.html"]
    assert API_URL in s3.get_object(Bucket=bucket, Key="config.js")["Body"].read().decode()
