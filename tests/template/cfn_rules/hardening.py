"""cfn-lint rules for this project's security and throttling promises (run by `make test`).

    cfn-lint template.yaml -a tests/template/cfn_rules

cfn-lint 1.x validates SAM resources as written, with the template's Globals merged into each
function, so these rules read `AWS::Serverless::*` resources (and the plain CloudFormation forms
too, should the template ever spell them out).
"""

from __future__ import annotations

import json
import re
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch

PUBLIC_ACCESS_FLAGS = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
# How long one call may hold a concurrency slot in the worst common case: a cold start
# (0.7-0.9 s measured); the throttling budget below assumes it.
COLD_START_S = 1.0


def _text(value: Any) -> str:
    """A property value as text, intrinsics included (``Fn::Sub`` strings, ``Ref`` names)."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if key == "Fn::Sub":
            return _text(inner[0] if isinstance(inner, list) else inner)
        if key == "Ref":
            return "${" + str(inner) + "}"
        if key == "Fn::GetAtt":
            return "${" + (".".join(inner) if isinstance(inner, list) else str(inner)) + "}"
        if key == "Fn::If":
            return " | ".join(_text(v) for v in inner[1:])
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    return str(value)


def _statements(policy: Any) -> list[dict[str, Any]]:
    doc = policy.get("PolicyDocument", policy) if isinstance(policy, dict) else {}
    statements = doc.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _number(cfn: Any, value: Any) -> float | None:
    if isinstance(value, dict) and "Ref" in value:
        value = cfn.template.get("Parameters", {}).get(value["Ref"], {}).get("Default")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class BucketsArePrivate(CloudFormationLintRule):
    id = "E9001"
    shortdesc = "Buckets are private and encrypted"
    description = "Every bucket sets all four Block Public Access flags, BucketOwnerEnforced and encryption"
    tags = ["s3", "security"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for name, res in cfn.get_resources(["AWS::S3::Bucket"]).items():
            props = res.get("Properties", {})
            path = ["Resources", name, "Properties"]
            block = props.get("PublicAccessBlockConfiguration", {})
            for flag in PUBLIC_ACCESS_FLAGS:
                if block.get(flag) is not True:
                    matches.append(RuleMatch(path, f"{name}: PublicAccessBlockConfiguration.{flag} must be true"))
            rules = props.get("OwnershipControls", {}).get("Rules", [])
            if not any(r.get("ObjectOwnership") == "BucketOwnerEnforced" for r in rules):
                matches.append(RuleMatch(path, f"{name}: OwnershipControls must be BucketOwnerEnforced (no ACLs)"))
            if not props.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration"):
                matches.append(RuleMatch(path, f"{name}: BucketEncryption must be set"))
            if "WebsiteConfiguration" in props:
                matches.append(RuleMatch(path, f"{name}: no S3 website endpoint; serve through CloudFront"))
        return matches


class WebsiteOnlyThroughCloudFront(CloudFormationLintRule):
    id = "E9002"
    shortdesc = "Bucket policies allow only CloudFront OAC, for one distribution"
    description = (
        "No bucket policy allows a public principal; an Allow to cloudfront.amazonaws.com is limited by "
        "AWS:SourceArn to a distribution of this stack, whose origin uses Origin Access Control"
    )
    tags = ["s3", "cloudfront", "security"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        distributions = cfn.get_resources(["AWS::CloudFront::Distribution"])
        for name, res in cfn.get_resources(["AWS::S3::BucketPolicy"]).items():
            path = ["Resources", name, "Properties", "PolicyDocument"]
            for st in _statements(res.get("Properties", {})):
                if st.get("Effect") != "Allow":
                    continue
                principal = st.get("Principal")
                services = _as_list(principal.get("Service", [])) if isinstance(principal, dict) else []
                if principal == "*" or (isinstance(principal, dict) and "AWS" in principal and "*" in
                                        _as_list(principal["AWS"])):  # fmt: skip
                    matches.append(RuleMatch(path, f"{name}: an Allow to everyone ({st.get('Sid', '?')})"))
                elif services == ["cloudfront.amazonaws.com"]:
                    source = _text(st.get("Condition", {}).get("StringEquals", {}).get("AWS:SourceArn", ""))
                    if not any(f"distribution/${{{d}}}" in source for d in distributions):
                        matches.append(RuleMatch(path, f"{name}: CloudFront access not limited to this stack's "
                                                       "distribution by AWS:SourceArn"))  # fmt: skip
                else:
                    matches.append(RuleMatch(path, f"{name}: unexpected Allow principal {principal!r}"))
        for name, res in distributions.items():
            origins = res.get("Properties", {}).get("DistributionConfig", {}).get("Origins", [])
            for origin in origins:
                if "S3OriginConfig" in origin and not origin.get("OriginAccessControlId"):
                    matches.append(RuleMatch(["Resources", name], f"{name}: S3 origin without Origin Access Control"))
            behaviour = res.get("Properties", {}).get("DistributionConfig", {}).get("DefaultCacheBehavior", {})
            if behaviour.get("ViewerProtocolPolicy") not in ("redirect-to-https", "https-only"):
                matches.append(RuleMatch(["Resources", name], f"{name}: viewers must use HTTPS"))
        return matches


class ServingRolesReadOnlyTheModelPrefix(CloudFormationLintRule):
    id = "E9003"
    shortdesc = "Serving functions can only s3:GetObject the model prefix"
    description = "Every S3 permission of a function is s3:GetObject under ${ModelBucket}/${ModelPrefix}/"
    tags = ["iam", "security"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        sources: list[tuple[str, list[Any]]] = []
        for name, fn in cfn.get_resources(["AWS::Serverless::Function"]).items():
            policies = _as_list(fn.get("Properties", {}).get("Policies", []))
            if not _trains(policies):  # the training function: E9009
                sources.append((name, policies))
        for fn in cfn.get_resources(["AWS::Lambda::Function"]).values():
            role = fn.get("Properties", {}).get("Role")
            role_name = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
            if role_name in cfn.template["Resources"]:
                role_props = cfn.template["Resources"][role_name].get("Properties", {})
                sources.append((role_name, role_props.get("Policies", [])))
        for name, policies in sources:
            path = ["Resources", name, "Properties", "Policies"]
            for policy in policies:
                if not isinstance(policy, dict) or "Statement" not in policy and "PolicyDocument" not in policy:
                    if "s3" in str(policy).lower():  # a managed policy or a SAM policy template on S3
                        matches.append(RuleMatch(path, f"{name}: S3 access through {policy!r}; only s3:GetObject"))
                    continue
                for st in _statements(policy):
                    actions = [a for a in _as_list(st.get("Action", [])) if str(a).lower().startswith("s3:")]
                    if not actions:
                        continue
                    if st.get("Effect") == "Allow" and actions != ["s3:GetObject"]:
                        matches.append(RuleMatch(path, f"{name}: allows {actions}; serving needs only s3:GetObject"))
                    for resource in _as_list(st.get("Resource", [])):
                        text = _text(resource)
                        if not re.search(r"\$\{ModelBucket\}/\$\{ModelPrefix\}/\*$", text):
                            matches.append(RuleMatch(path, f"{name}: S3 resource {text!r} is not the model prefix"))
        if not sources:
            matches.append(RuleMatch(["Resources"], "no functions found to check"))
        return matches


def _trains(policies: list[Any]) -> bool:
    """Whether a function publishes models: it is given ModelPublisherPolicy."""
    return {"Ref": "ModelPublisherPolicy"} in policies


class FeedbackAndTrainingLeastPrivilege(CloudFormationLintRule):
    id = "E9009"
    shortdesc = "The tables: each function gets only the DynamoDB actions it calls, on the table or index it calls"
    description = (
        "A serving function may PutItem, UpdateItem (the counts of shown picks), DeleteItem, ConditionCheckItem "
        "and Query FeedbackTable (the public feedback API), PutItem, DeleteItem and Query EventsTable (the "
        "signed events API), and only Query "
        "EventsTable's by_time index (the readers of a user's events); no function holds both tables' writes. "
        "The training function (the one given ModelPublisherPolicy) may Scan FeedbackTable and EventsTable, "
        "GetObject and ListBucket the RatingsUri, and write only through ModelPublisherPolicy"
    )
    tags = ["iam", "security"]
    SERVING = {
        "${FeedbackTable.Arn}": {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem",
                                 "dynamodb:ConditionCheckItem", "dynamodb:Query"},
        "${EventsTable.Arn}": {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"},
        "${EventsTable.Arn}/index/by_time": {"dynamodb:Query"},
    }  # fmt: skip
    TRAINING = {"dynamodb:Scan", "s3:GetObject", "s3:ListBucket"}
    TRAINING_TABLES = {"${FeedbackTable.Arn}", "${EventsTable.Arn}"}

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for name, fn in cfn.get_resources(["AWS::Serverless::Function"]).items():
            policies = _as_list(fn.get("Properties", {}).get("Policies", []))
            trains = _trains(policies)
            path = ["Resources", name, "Properties", "Policies"]
            written: set[str] = set()
            for policy in policies:
                if not isinstance(policy, dict) or "Statement" not in policy and "PolicyDocument" not in policy:
                    if "dynamodb" in str(policy).lower():
                        matches.append(RuleMatch(path, f"{name}: DynamoDB access through {policy!r}"))
                    continue
                for st in _statements(policy):
                    actions = {str(a) for a in _as_list(st.get("Action", []))}
                    resources = [_text(r) for r in _as_list(st.get("Resource", []))]
                    dynamo = {a for a in actions if a.lower().startswith("dynamodb:")}
                    if trains and st.get("Effect") == "Allow" and actions - self.TRAINING:
                        matches.append(RuleMatch(path, f"{name}: training allows {sorted(actions - self.TRAINING)}"))
                    if trains and dynamo and not set(resources) <= self.TRAINING_TABLES:
                        matches.append(RuleMatch(path, f"{name}: DynamoDB actions on {resources}, not the tables"))
                    for resource in resources if dynamo and not trains else []:
                        allowed = self.SERVING.get(resource)
                        if allowed is None:
                            matches.append(RuleMatch(path, f"{name}: DynamoDB actions on {resource!r}, not a table"))
                        elif dynamo - allowed:
                            matches.append(RuleMatch(path, f"{name}: allows {sorted(dynamo - allowed)} on {resource}"))
                        if dynamo & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}:
                            written.add(resource)
                        elif resource == "${EventsTable.Arn}":  # a reader: the index, newest first, only
                            matches.append(RuleMatch(path, f"{name}: reads the whole events table, not its index"))
                    if trains and actions & {"s3:GetObject", "s3:ListBucket"} and not all(
                        _under_ratings(r) for r in _as_list(st.get("Resource", []))
                    ):
                        matches.append(RuleMatch(path, f"{name}: reads S3 outside RatingsUri: {resources}"))
            if len(written) > 1:
                matches.append(RuleMatch(path, f"{name}: writes to {sorted(written)}; one table per function"))
        return matches


def _under_ratings(resource: Any) -> bool:
    """Whether an S3 resource is ``arn:...:s3:::${X}`` or ``${X}*`` with X taken from RatingsUri."""
    sub = resource.get("Fn::Sub") if isinstance(resource, dict) else None
    if not (isinstance(sub, list) and len(sub) == 2 and isinstance(sub[1], dict)):
        return False
    found = re.fullmatch(r"arn:\$\{AWS::Partition\}:s3:::\$\{(\w+)\}\*?", str(sub[0]))
    return bool(found) and "RatingsUri" in json.dumps(sub[1].get(found.group(1)) if found else None)


class PublisherWritesOnlyVersionsAndPointer(CloudFormationLintRule):
    id = "E9004"
    shortdesc = "The publishing identity writes only under models/ and the pointer"
    description = "ModelPublisherPolicy exists; its PutObject/DeleteObject resources are models/* and latest.json"
    tags = ["iam", "security"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        policy = cfn.template["Resources"].get("ModelPublisherPolicy")
        if policy is None or policy.get("Type") != "AWS::IAM::ManagedPolicy":
            return [RuleMatch(["Resources"], "no ModelPublisherPolicy: the publishing identity is undefined")]
        matches = []
        allowed_writes = {"${ModelBucket.Arn}/${ModelPrefix}/models/*", "${ModelBucket.Arn}/${ModelPrefix}/latest.json"}
        for st in _statements(policy.get("Properties", {})):
            path = ["Resources", "ModelPublisherPolicy", "Properties", "PolicyDocument"]
            actions = {str(a) for a in _as_list(st.get("Action", []))}
            resources = {_text(r) for r in _as_list(st.get("Resource", []))}
            if any("*" in a for a in actions):
                matches.append(RuleMatch(path, f"wildcard action in {sorted(actions)}"))
            if actions & {"s3:PutObject", "s3:DeleteObject"} and not resources <= allowed_writes:
                matches.append(RuleMatch(path, f"writes outside models/ and the pointer: {sorted(resources)}"))
            if actions - {"s3:PutObject", "s3:DeleteObject", "s3:GetObject", "s3:ListBucket"}:
                matches.append(RuleMatch(path, f"unexpected actions {sorted(actions)}"))
        return matches


class GatewayThrottlesBeforeLambda(CloudFormationLintRule):
    id = "E9005"
    shortdesc = "Stages throttle; reserved concurrency is optional and, when set, covers every method"
    description = (
        "Every stage sets rate and burst limits. Reserved concurrency defaults to none (0 must stay "
        "allowed, or the stack cannot deploy on a small account); a function that reserves some "
        "reserves at least, for each API method it serves, burst + rate x "
        f"{COLD_START_S} s (a cold start), since stage limits apply per method"
    )
    tags = ["apigateway", "lambda", "reliability"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        limits = []
        stages = {**cfn.get_resources(["AWS::Serverless::Api"]), **cfn.get_resources(["AWS::ApiGateway::Stage"])}
        for name, res in stages.items():
            settings = res.get("Properties", {}).get("MethodSettings", [])
            rate = burst = None
            for s in settings:
                rate = _number(cfn, s.get("ThrottlingRateLimit"))
                burst = _number(cfn, s.get("ThrottlingBurstLimit"))
            if rate is None or burst is None:
                matches.append(RuleMatch(["Resources", name], f"{name}: stage without throttling rate and burst"))
                continue
            limits.append((rate, burst))
        if not limits:
            matches.append(RuleMatch(["Resources"], "no API stage with throttling found"))
        per_method = max((burst + rate * COLD_START_S for rate, burst in limits), default=0)
        functions = cfn.get_resources(["AWS::Serverless::Function", "AWS::Lambda::Function"])
        for name, res in functions.items():
            props = res.get("Properties", {})
            value = props.get("ReservedConcurrentExecutions")
            parameter = _parameter_of(value)
            if parameter is not None:
                minimum = _number(cfn, cfn.template.get("Parameters", {}).get(parameter, {}).get("MinValue", 0))
                if minimum and minimum > 0:
                    matches.append(
                        RuleMatch(["Parameters", parameter], f"{parameter}: MinValue {minimum:g} forbids 0 (none)")
                    )
            reserved = _number(cfn, _true_branch(value)) if value is not None else 0.0
            if not reserved:
                continue  # no reservation: the account's unreserved pool serves the function
            methods = sum(1 for e in props.get("Events", {}).values() if e.get("Type") == "Api")
            need = methods * per_method
            if reserved < need:
                message = (
                    f"{name}: reserved concurrency {reserved:g} < {methods} methods x (burst + rate x "
                    f"{COLD_START_S} s) = {need:g}; a burst would meet Lambda's throttle before API Gateway's 429"
                )
                matches.append(RuleMatch(["Resources", name], message))
        return matches


class OneStage(CloudFormationLintRule):
    id = "E9006"
    shortdesc = "The API deploys one stage, the throttled one"
    description = (
        "Every AWS::Serverless::Api sets OpenApiVersion (without it SAM also deploys a default 'Stage' "
        "stage that serves the same functions without MethodSettings); no Deployment names a stage"
    )
    tags = ["apigateway", "security"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for name, res in cfn.get_resources(["AWS::Serverless::Api"]).items():
            if not res.get("Properties", {}).get("OpenApiVersion"):
                matches.append(
                    RuleMatch(["Resources", name], f"{name}: no OpenApiVersion, so SAM adds a 'Stage' stage")
                )
        for name, res in cfn.get_resources(["AWS::ApiGateway::Deployment"]).items():
            if res.get("Properties", {}).get("StageName"):
                matches.append(
                    RuleMatch(["Resources", name], f"{name}: a Deployment with StageName makes a second stage")
                )
        return matches


#: The requests that write under models/, as S3 authorizes them (all are the action s3:PutObject),
#: with the condition keys each carries (AWS, "Enforce conditional writes on Amazon S3 buckets"):
#: s3:ObjectCreationOperation is true for the calls that create the object and false for the
#: multipart steps before it; s3:if-none-match is present when the request sends If-None-Match.
WRITES = {
    "PutObject": {"s3:ObjectCreationOperation": "true"},
    "PutObject If-None-Match": {"s3:ObjectCreationOperation": "true", "s3:if-none-match": "*"},
    "CreateMultipartUpload": {"s3:ObjectCreationOperation": "false"},
    "UploadPart": {"s3:ObjectCreationOperation": "false"},
    "CompleteMultipartUpload": {"s3:ObjectCreationOperation": "true"},
    "CompleteMultipartUpload If-None-Match": {"s3:ObjectCreationOperation": "true", "s3:if-none-match": "*"},
    "CopyObject": {"s3:ObjectCreationOperation": "true"},
}
#: Which of them a publisher must be able to make, and which must be refused to everyone.
ALLOWED_WRITES = {
    "PutObject If-None-Match",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload If-None-Match",
}


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    """IAM's evaluation of the operators this policy uses: every operator, every key must hold."""
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            expected = {str(v).lower() for v in _as_list(wanted)}
            if operator == "Null":
                actual = "true" if key not in context else "false"
            elif operator == "Bool":
                if key not in context:
                    return False
                actual = context[key].lower()
            else:
                return False  # an operator this rule does not model: treat the statement as not applying
            if actual not in expected:
                return False
    return True


class PublishedVersionsAreNeverOverwritten(CloudFormationLintRule):
    id = "E9008"
    shortdesc = "The model bucket refuses unconditional writes under models/, and lets multipart uploads through"
    description = (
        "ModelBucketPolicy, evaluated for each write a publisher can make under models/*, denies a "
        "PutObject, CompleteMultipartUpload or CopyObject without If-None-Match (so no identity can "
        "replace a published version) and denies none of If-None-Match PutObject, "
        "CreateMultipartUpload, UploadPart and If-None-Match CompleteMultipartUpload (so a large part "
        "can be uploaded in parts)"
    )
    tags = ["s3", "integrity"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        policy = cfn.template["Resources"].get("ModelBucketPolicy", {}).get("Properties", {})
        denies = [
            st.get("Condition", {})
            for st in _statements(policy)
            if st.get("Effect") == "Deny"
            and {"s3:PutObject", "s3:*"} & {str(a) for a in _as_list(st.get("Action", []))}
            and any("/models/*" in _text(r) for r in _as_list(st.get("Resource", [])))
        ]
        denied = {name for name, context in WRITES.items() if any(_condition_holds(c, context) for c in denies)}
        wrong = sorted((set(WRITES) - ALLOWED_WRITES) - denied) + sorted(denied & ALLOWED_WRITES)
        if wrong:
            return [
                RuleMatch(["Resources", "ModelBucketPolicy"], f"models/* writes decided wrongly: {', '.join(wrong)}")
            ]
        return []


def _parameter_of(value: Any) -> str | None:
    """The parameter a property takes its value from, directly or as an Fn::If's true branch."""
    value = _true_branch(value)
    return str(value["Ref"]) if isinstance(value, dict) and "Ref" in value else None


def _true_branch(value: Any) -> Any:
    if isinstance(value, dict) and "Fn::If" in value:
        return value["Fn::If"][1]
    return value
