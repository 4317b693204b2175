"""Where a model store lives: ``s3://bucket/prefix`` or a local folder.

The layout under it is the same on both; what its files hold is `recsys.parts`::

    latest.json                     the pointer, written last
    models/<version>/<part>.pkl     the model's parts
    models/<version>/metrics.json
    models/<version>/report.html
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from recsys.parts import POINTER


class ModelUri(NamedTuple):
    """A parsed model-store location. `bucket` is None for a local folder."""

    bucket: str | None
    prefix: str

    @classmethod
    def parse(cls, raw: str) -> ModelUri:
        raw = raw.strip()
        if raw.startswith("s3://"):
            bucket, _, prefix = raw[len("s3://") :].partition("/")
            if not bucket:
                raise ValueError(f"no bucket in {raw!r}")
            prefix = prefix.strip("/")
            if prefix.endswith(POINTER):
                prefix = prefix[: -len(POINTER)].rstrip("/")
            return cls(bucket, prefix)
        if "://" in raw:
            raise ValueError(f"expected s3://bucket/prefix or a local folder, got {raw!r}")
        if not raw:
            raise ValueError("empty location")
        path = Path(raw)
        if path.name == POINTER:
            path = path.parent
        return cls(None, str(path.resolve()))

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def key(self, relative: str) -> str:
        """The S3 key or local path of a file under this location."""
        if self.bucket is None:
            return str(Path(self.prefix, relative))
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.bucket is not None else self.prefix
