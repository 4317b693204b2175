"""Upload the website to its bucket with config.js from the stack's outputs, then invalidate CloudFront.

python -m scripts.deploy_site                    # after `sam deploy` (make deploy)
python -m scripts.deploy_site --output ModelUri  # print one stack output (make publish-model)
"""

from __future__ import annotations

import argparse
import mimetypes
import sys
import time
from pathlib import Path
from typing import Any

from devstack.site import config_js
from devstack.template import FRONTEND

STACK = "movie-recommender"


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def upload_site(s3: Any, bucket: str, api_url: str, site: Path = FRONTEND) -> list[str]:
    """Put every file of the site, and a config.js naming `api_url`; return the keys written."""
    files = {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}
    files["config.js"] = config_js(api_url)
    for key, body in files.items():
        kind = mimetypes.guess_type(key)[0] or "application/octet-stream"
        cache = "no-cache" if key.endswith((".html", "config.js")) else "public, max-age=300"
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=kind, CacheControl=cache)
    return sorted(files)


def main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(prog="python -m scripts.deploy_site", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default=STACK)
    parser.add_argument("--output", help="print this stack output and exit")
    args = parser.parse_args(argv)
    outputs = stack_outputs(boto3.client("cloudformation"), args.stack)
    if args.output:
        print(outputs[args.output])
        return 0
    keys = upload_site(boto3.client("s3"), outputs["WebsiteBucket"], outputs["ApiUrl"])
    boto3.client("cloudfront").create_invalidation(
        DistributionId=outputs["DistributionId"],
        InvalidationBatch={"Paths": {"Quantity": 1, "Items": ["/*"]}, "CallerReference": str(time.time())},
    )
    print(f"uploaded {len(keys)} files to s3://{outputs['WebsiteBucket']}; site: {outputs['WebsiteUrl']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
