from __future__ import annotations

import pytest

from recsys.config import Settings
from recsys.errors import ConfigurationError
from recsys.uri import ModelUri

pytestmark = pytest.mark.unit


def test_settings_read_and_validate() -> None:
    s = Settings.from_env({"MODEL_URI": "s3://bucket/pre/fix/latest.json", "MODEL_REFRESH_SECONDS": "5"})
    assert s.model_uri == ModelUri("bucket", "pre/fix")
    assert s.refresh_seconds == 5.0 and s.allowed_origin == "*"


@pytest.mark.parametrize("env, message", [
    ({}, "MODEL_URI is not set"),
    ({"MODEL_URI": "ftp://x"}, "MODEL_URI"),
    ({"MODEL_URI": "s3://b/p", "MODEL_REFRESH_SECONDS": "soon"}, "must be a number"),
    ({"MODEL_URI": "s3://b/p", "MODEL_REFRESH_SECONDS": "-1"}, "at least"),
])  # fmt: skip
def test_settings_reject_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)
