"""Tracing of the handlers: powertools' X-Ray tracer when tracing is on, a provider that records
nothing when it is off (so that the X-Ray SDK is not even imported)."""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.tracing.base import BaseProvider, BaseSegment

#: What X-Ray traces besides the handler (when tracing is on): http.client, which carries the S3
#: reads of `recsys.s3` (and boto3's, through urllib3). Patching everything (powertools' default)
#: imports botocore, requests and more at cold start for calls these functions never make.
TRACED_MODULES = ("httplib",)


def create_tracer() -> Tracer:
    """Powertools' X-Ray tracer, patching only `TRACED_MODULES`, when tracing is on; else a tracer
    whose provider does nothing, so that the X-Ray SDK is never imported (powertools imports it for
    a disabled tracer too). On or off is powertools' own rule: inside Lambda, not in SAM's emulator,
    unless POWERTOOLS_TRACE_DISABLED."""
    if not Tracer._is_tracer_disabled():
        return Tracer(patch_modules=TRACED_MODULES)
    return Tracer(disabled=True, provider=Untraced())


class _NoSegment(BaseSegment):
    def close(self, end_time: int | None = None) -> None: ...
    def add_subsegment(self, subsegment: Any) -> None: ...
    def remove_subsegment(self, subsegment: Any) -> None: ...
    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None: ...


class Untraced(BaseProvider):
    """A tracing provider that records nothing (tracing off)."""

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Generator[BaseSegment]:
        yield _NoSegment()

    @contextlib.asynccontextmanager
    async def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> Any:
        yield _NoSegment()

    def put_annotation(self, key: str, value: Any) -> None: ...
    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...
    def patch(self, modules: Any) -> None: ...
    def patch_all(self) -> None: ...
