"""Settings of a serving function, read once from the environment and validated."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from recsys.errors import ConfigurationError
from recsys.uri import ModelUri


class Settings(NamedTuple):
    """What a function needs to serve.

    model_uri : where `latest.json` lives (``s3://bucket/prefix`` or a local folder).
    refresh_seconds : at most this often a request checks whether a newer model was published.
    allowed_origin : the website origin echoed in CORS headers (``*`` for local development).
    load_deadline_seconds : one model load (pointer and parts, retries included) gives up after
        this long on the monotonic clock and answers 503; well under Lambda's 10 s init (where a
        SnapStart function loads) and API Gateway's 29 s.
    """

    model_uri: ModelUri
    refresh_seconds: float = 60.0
    allowed_origin: str = "*"
    load_deadline_seconds: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        raw_uri = env.get("MODEL_URI", "").strip()
        if not raw_uri:
            raise ConfigurationError("MODEL_URI is not set")
        try:
            uri = ModelUri.parse(raw_uri)
        except ValueError as exc:
            raise ConfigurationError(f"MODEL_URI: {exc}") from exc
        refresh = _number(env, "MODEL_REFRESH_SECONDS", 60.0, minimum=0.0)
        origin = env.get("ALLOWED_ORIGIN", "*").strip() or "*"
        deadline = _number(env, "MODEL_LOAD_DEADLINE_SECONDS", 5.0, minimum=0.1)
        return cls(uri, refresh, origin, deadline)


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:
        raise ConfigurationError(f"{name} must be at least {minimum}, got {raw!r}")
    return value
