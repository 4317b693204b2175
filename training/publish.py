"""Publishing a model: version files first, the pointer last, never overwriting anyone.

1. The pointer's tag (S3 ETag, or the file's sha256 locally) is read when the run starts.
2. ``models/<version>/*`` are written only if absent (S3 ``If-None-Match: *``).
3. ``latest.json`` is replaced only if its tag is still the one read at start (S3 ``If-Match``;
   ``If-None-Match: *`` when there was none). A publisher that lost a race fails with a clear
   message, removes its own version files, and the pointer names the winner's complete model.

A run that fails anywhere before step 3 leaves the previous pointer, and the model it names,
untouched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from recsys.parts import MODELS, POINTER, Pointer, model_key
from recsys.uri import ModelUri


class PublishError(RuntimeError):
    """Publishing did not happen; the message says why and what is served instead."""


class LostRaceError(PublishError):
    """Another publisher swung the pointer since this run read it: a race, not a failure."""


class Writer(Protocol):
    def pointer(self) -> tuple[dict[str, Any] | None, str | None]: ...
    def put_new(self, relative: str, data: bytes) -> None: ...
    def swap_pointer(self, data: bytes, expected_tag: str | None) -> None: ...
    def versions(self) -> list[str]: ...
    def delete_version(self, version: str) -> None: ...
    def read(self, relative: str) -> bytes | None: ...


@dataclass(frozen=True)
class Published:
    version: str
    parts: dict[str, dict[str, Any]]  # name: {key, sha256, size}, as in the pointer
    created_at: str
    location: str
    pruned: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(int(entry["size"]) for entry in self.parts.values())


def publish(
    writer: Writer,
    version: str,
    parts: dict[str, bytes],
    extras: dict[str, bytes],
    expected_tag: str | None,
    created_at: dt.datetime,
    keep: int | None = None,
    location: str = "",
) -> Published:
    """Write the version's files (the model's `parts`, then `extras`), then swing the pointer to it
    if nobody else did meanwhile. The pointer names every part with its size and sha256."""
    pointer = Pointer.for_parts(version, parts, created_at.isoformat().replace("+00:00", "Z"))
    written: list[str] = []
    try:
        for name, data in parts.items():
            writer.put_new(pointer.parts[name].key, data)
            written.append(pointer.parts[name].key)
        for name, data in extras.items():
            writer.put_new(model_key(version, name), data)
            written.append(model_key(version, name))
        writer.swap_pointer(pointer.dumps(), expected_tag)
    except PublishError:
        if written:
            with contextlib.suppress(Exception):  # tidying our own files; the error below matters
                writer.delete_version(version)
        raise
    pruned = prune(writer, keep, current=version) if keep else ()
    return Published(location=location, pruned=tuple(pruned), **pointer.to_json())


def prune(writer: Writer, keep: int, current: str) -> list[str]:
    """Delete all but the `keep` newest versions; the current one always stays."""
    if keep < 1:
        raise ValueError("--keep must be at least 1")
    versions = sorted(writer.versions(), reverse=True)
    kept = [current] + [v for v in versions if v != current][: keep - 1]
    doomed = [v for v in versions if v not in kept]
    for v in doomed:
        writer.delete_version(v)
    return doomed


def writer_for(uri: ModelUri, s3_client: Any = None) -> Writer:
    if uri.is_s3:
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        return S3Writer(uri, s3_client)
    return LocalWriter(uri)


class LocalWriter:
    """A model store in a local folder, with the same guarantees as S3's conditional writes."""

    def __init__(self, uri: ModelUri) -> None:
        self.root = Path(uri.prefix)

    def pointer(self) -> tuple[dict[str, Any] | None, str | None]:
        path = self.root / POINTER
        if not path.exists():
            return None, None
        raw = path.read_bytes()
        return json.loads(raw), hashlib.sha256(raw).hexdigest()

    def put_new(self, relative: str, data: bytes) -> None:
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.link(tmp, target)  # fails if the target exists: never overwrite a published file
        except FileExistsError:
            raise PublishError(f"{target} already exists; a version is never overwritten") from None
        finally:
            os.unlink(tmp)

    def swap_pointer(self, data: bytes, expected_tag: str | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{POINTER}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current, tag = self.pointer()
            if tag != expected_tag:
                raise _lost_race(current)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".pointer-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.root / POINTER)

    def versions(self) -> list[str]:
        folder = self.root / MODELS
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []

    def delete_version(self, version: str) -> None:
        shutil.rmtree(self.root / MODELS / version, ignore_errors=True)

    def read(self, relative: str) -> bytes | None:
        path = self.root / relative
        return path.read_bytes() if path.is_file() else None


class S3Writer:
    """A model store under an S3 prefix, using conditional PutObject for every write."""

    def __init__(self, uri: ModelUri, client: Any) -> None:
        self.uri = uri
        self.bucket = uri.bucket
        self.client = client

    def pointer(self) -> tuple[dict[str, Any] | None, str | None]:
        """The pointer and its ETag, or (None, None) when there is none yet.

        S3 answers a GET of a missing key with 404 only to a caller allowed to list the bucket
        there. `ModelPublisherPolicy` grants ListBucket only with an ``s3:prefix`` condition, which
        a GET does not carry, so a fresh store answers 403: a listing of exactly that key (which
        the condition does allow) then tells "absent" from "denied".
        """
        from botocore.exceptions import ClientError

        key = self.uri.key(POINTER)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in ("NoSuchKey", "404"):
                return None, None
            if code in ("AccessDenied", "403") and not self._exists(key):
                return None, None
            raise PublishError(f"cannot read s3://{self.bucket}/{key}: {code}") from exc
        return json.loads(response["Body"].read()), response["ETag"]

    def _exists(self, key: str) -> bool:
        """Whether `key` exists, by listing that one key (allowed where a GET of a missing key is not)."""
        from botocore.exceptions import ClientError

        try:
            listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        except ClientError:
            return True  # cannot tell: report the GET's own denial
        return any(o["Key"] == key for o in listing.get("Contents", []))

    def put_new(self, relative: str, data: bytes) -> None:
        self._put(relative, data, IfNoneMatch="*")

    def swap_pointer(self, data: bytes, expected_tag: str | None) -> None:
        condition = {"IfMatch": expected_tag} if expected_tag else {"IfNoneMatch": "*"}
        self._put(POINTER, data, ContentType="application/json", **condition)

    def versions(self) -> list[str]:
        prefix = self.uri.key(MODELS) + "/"
        paginator = self.client.get_paginator("list_objects_v2")
        found = set()
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for p in page.get("CommonPrefixes", []):
                found.add(p["Prefix"][len(prefix) :].strip("/"))
        return sorted(found)

    def delete_version(self, version: str) -> None:
        prefix = self.uri.key(f"{MODELS}/{version}/")
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if objects:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def read(self, relative: str) -> bytes | None:
        """The object's bytes; None when it does not exist; PublishError when it cannot be read."""
        from botocore.exceptions import BotoCoreError, ClientError

        key = self.uri.key(relative)
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in ("NoSuchKey", "404"):
                return None
            raise PublishError(f"cannot read s3://{self.bucket}/{key}: {code}") from exc
        except BotoCoreError as exc:
            raise PublishError(f"cannot read s3://{self.bucket}/{key}: {type(exc).__name__}") from exc

    def _put(self, relative: str, data: bytes, **conditions: str) -> None:
        from botocore.exceptions import ClientError

        key = self.uri.key(relative)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, **conditions)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                if relative == POINTER:
                    raise _lost_race(self.pointer()[0]) from None
                raise PublishError(f"s3://{self.bucket}/{key} already exists; a version is never overwritten") from None
            raise PublishError(f"cannot write s3://{self.bucket}/{key}: {code} {exc}") from exc


def _lost_race(current: dict[str, Any] | None) -> LostRaceError:
    now = f"version {current['version']}" if current else "no model"
    return LostRaceError(
        f"another publisher changed {POINTER} since this run started (it now names {now}); "
        "this run's model was not published. Run again to publish on top of it."
    )
