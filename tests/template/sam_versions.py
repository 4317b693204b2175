"""Print, as JSON, each function's published version after the real SAM transform: its logical id and
its description as CloudFormation resolves it with the parameter values.

    python sam_versions.py TEMPLATE PARAMETERS_JSON LAYER_ZIP

Run with SAM CLI's Python (.venv-sam), which has the translator. Code folders are replaced by S3
locations, as `sam package` replaces them: the functions' by one zip, the layer's by LAYER_ZIP (a
new layer content is a new zip). PARAMETERS_JSON holds the parameter values, as CloudFormation
gives them to the transform at deploy time.
"""

from __future__ import annotations

import json
import os
import sys

from samtranslator.intrinsics.resolver import IntrinsicsResolver
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    def load(self) -> dict[str, str]:
        return {}


def main(path: str, parameters: str, layer_zip: str) -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(path) as f:
        template = yaml_parse(f.read())
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if "CodeUri" in props:
            props["CodeUri"] = "s3://packaged/functions.zip"
        if "ContentUri" in props:
            props["ContentUri"] = layer_zip
        if props.get("PackageType") == "Image":  # sam package pushes it to ECR
            props["ImageUri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:python3.13"
    defaults = {name: str(p.get("Default", "")) for name, p in template.get("Parameters", {}).items()}
    values = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
              **defaults, **json.loads(parameters)}  # fmt: skip
    resources = transform(template, values, NoManagedPolicies())["Resources"]
    resolver = IntrinsicsResolver(values)
    versions = {}
    for name, resource in resources.items():
        if resource["Type"] == "AWS::Lambda::Version":
            description = resolver.resolve_parameter_refs(resource["Properties"].get("Description"))
            versions[name] = description.get("Fn::Sub") if isinstance(description, dict) else description
    print(json.dumps(versions, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:4])
