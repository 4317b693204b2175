"""A local AWS (moto on loopback: S3, DynamoDB) and copying a model store into it."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from recsys.parts import POINTER


@contextlib.contextmanager
def moto_server(port: int) -> Iterator[str]:
    """A moto server on loopback (S3, DynamoDB, ...); yields its endpoint URL and points boto3 at it.
    Its DynamoDB transactions copy only the items they touch, and its queries read one partition
    (`devstack.dynamodb.patch_moto`)."""
    from moto.server import ThreadedMotoServer

    from devstack.dynamodb import patch_moto
    from devstack.servers import port_is_free

    patch_moto()
    # werkzeug logs every request to stderr unless told otherwise: the functions' model refresh
    # alone was a line every 5 s (`VERBOSE=1` keeps them)
    if not os.environ.get("VERBOSE"):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if not port_is_free(port):  # moto's server thread would die, and its start() wait forever
        raise OSError(f"port {port} is in use: moto cannot listen there")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )  # fmt: skip
    try:
        yield endpoint
    finally:
        server.stop()


def upload_store(s3: Any, bucket: str, prefix: str, store: Path) -> None:
    """Copy a local model store under s3://`bucket`/`prefix`, its pointer last (as publishing does)."""
    files = sorted(p for p in store.rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in sorted(files, key=lambda p: p.name == POINTER):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(store)}", Body=path.read_bytes())
