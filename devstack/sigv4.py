"""API Gateway's IAM authorization in miniature: a route with ``Auth: {Authorizer: AWS_IAM}`` takes
only a request signed with SigV4 by the local stack's test credentials, as moto's tests sign:
access key `ACCESS_KEY`, secret `SECRET_KEY`, region `REGION`, service ``execute-api``. Anything
else gets the 403 and the message that API Gateway gives (through the template's DEFAULT_4XX).

It checks what API Gateway checks before it invokes the function: a signature in the
``Authorization`` header, its scope (the key, the day, the region, the service), the time within
`MAX_SKEW` of now, and the signature itself over the canonical request (AWS's "Create a
canonical request for Signature Version 4"): method, path, sorted query, the signed headers, and
the body's SHA-256. IAM policies are not modelled: the test credentials may call every route.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, unquote

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"
SERVICE = "execute-api"
#: How far a request's X-Amz-Date may be from the gateway's clock.
MAX_SKEW = dt.timedelta(minutes=15)

MISSING = "Missing Authentication Token"
INVALID_TOKEN = "The security token included in the request is invalid."
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
    "Access Key and signing method. Consult the service documentation for details."
)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


def refusal(
    method: str, target: str, headers: Mapping[str, str], body: bytes, now: dt.datetime | None = None
) -> str | None:
    """None when the request is signed as the module's docstring says; otherwise API Gateway's
    message for its 403. `target` is the request line's path and query, as received."""
    lower = {k.lower(): v for k, v in headers.items()}
    authorization = lower.get("authorization")
    if not authorization:
        return MISSING
    found = _AUTHORIZATION.match(authorization.strip())
    if found is None:
        return (
            f"Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters, "
            f"signed with AWS4-HMAC-SHA256. Authorization={authorization.split(' ')[0]}"
        )
    parts = found["credential"].split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        return "Credential should be scoped to a valid region, service and aws4_request."
    key, day, region, service, _ = parts
    if key != ACCESS_KEY:
        return INVALID_TOKEN
    if region != REGION:
        return f"Credential should be scoped to a valid region, not '{region}'."
    if service != SERVICE:
        return f"Credential should be scoped to correct service: '{SERVICE}'."
    stamp = lower.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    now = now or dt.datetime.now(dt.UTC)
    if abs(now - when) > MAX_SKEW:
        return f"Signature expired: {stamp} is now earlier than {(now - MAX_SKEW).strftime('%Y%m%dT%H%M%SZ')}"
    if day != stamp[:8]:
        return "Credential should be scoped to the date of X-Amz-Date."
    names = found["signed"].split(";")
    if "host" not in names or any(n not in lower for n in names):
        return MISMATCH
    path, _, query = target.partition("?")
    canonical = "\n".join([
        method,
        quote(unquote(path) or "/", safe="/~"),
        "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                 for k, v in sorted(parse_qsl(query, keep_blank_values=True))),
        *(f"{n}:{' '.join(lower[n].split())}" for n in names),
        "",
        ";".join(names),
        lower.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest(),
    ])  # fmt: skip
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signing_key = ("AWS4" + SECRET_KEY).encode()
    for part in (day, region, service, "aws4_request"):
        signing_key = hmac.new(signing_key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, found["signature"]) else MISMATCH
