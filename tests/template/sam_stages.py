"""Print, as JSON, the API stage names a SAM template deploys after the SAM transform, the logical
ids of its Stage resources, and what the WAF association depends on.

Run with SAM CLI's Python (.venv-sam), which has the translator: a Stage resource's StageName,
and a Deployment's StageName, which SAM sets to "Stage" when the Api has no OpenApiVersion.
"""

from __future__ import annotations

import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def main(path: str) -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(path) as f:
        template = yaml_parse(f.read())
    for resource in template["Resources"].values():  # local code folders, as `sam package` replaces them
        for key in ("CodeUri", "ContentUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://packaged/code.zip"
        if resource.get("Properties", {}).get("PackageType") == "Image":  # sam package pushes it to ECR
            resource["Properties"]["ImageUri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:python3.13"
    transformed = transform(template, {}, NoManagedPolicies())["Resources"]
    resources = transformed.values()
    kinds = ("AWS::ApiGateway::Stage", "AWS::ApiGateway::Deployment")
    names = {r["Properties"]["StageName"] for r in resources if r["Type"] in kinds and r["Properties"].get("StageName")}
    stages = sorted(name for name, r in transformed.items() if r["Type"] == "AWS::ApiGateway::Stage")
    depends = transformed.get("FeedbackFirewallAssociation", {}).get("DependsOn")
    print(json.dumps({"names": sorted(names), "stage_ids": stages, "firewall_depends_on": depends}))


if __name__ == "__main__":
    main(sys.argv[1])
