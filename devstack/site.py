"""The website as CloudFront serves it: static files with the security headers and the CSP of the
template, and the `config.js` that tells the pages where the API is."""

from __future__ import annotations

import json
import mimetypes
import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from devstack.template import TEMPLATE, TemplateLoader, ref

#: Security headers the CloudFront response-headers policy adds; served locally too so that the
#: browser tests catch a page that would break under them.
SITE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def static_file(
    site: Path, config_js: bytes | None, target: str, headers: dict[str, str] = SITE_HEADERS
) -> tuple[int, dict[str, str], bytes]:
    path = urlsplit(target).path
    if path.endswith("/"):
        path += "index.html"
    if path == "/config.js" and config_js is not None:
        return 200, {"Content-Type": "text/javascript; charset=utf-8", **headers}, config_js
    file = (site / path.lstrip("/")).resolve()
    if site.resolve() not in file.parents or not file.is_file():
        return 404, {"Content-Type": "text/plain", **headers}, b"not found"
    kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind.endswith("javascript"):
        kind += "; charset=utf-8"
    return 200, {"Content-Type": kind, "Cache-Control": "no-cache", **headers}, file.read_bytes()


def site_csp(api_url: str, template: Path = TEMPLATE) -> str:
    """The Content-Security-Policy CloudFront serves (template.yaml), with the local API to connect to."""
    doc = yaml.load(template.read_text(), Loader=TemplateLoader)  # noqa: S506 - SafeLoader subclass
    for res in doc["Resources"].values():
        config = res.get("Properties", {}).get("ResponseHeadersPolicyConfig", {})
        policy = config.get("SecurityHeadersConfig", {}).get("ContentSecurityPolicy", {}).get("ContentSecurityPolicy")
        if policy is not None:
            return re.sub(r"https://\*\.execute-api\.\S+\.amazonaws\.com", api_url, ref(policy))
    raise ValueError(f"{template}: no ContentSecurityPolicy in a response headers policy")


def config_js(api_url: str) -> bytes:
    return f"// Written at deploy or demo time; do not edit.\nexport const API_URL = {json.dumps(api_url)};\n".encode()
