"""Cold starts as a visitor meets them: process start to a function's first 200, against a floor.

A Lambda cold start is a fresh interpreter that imports the handler module (init) and then runs the
first invocation, which loads the model from S3. `child` does exactly that in a fresh process, with
the environment the template deploys (tracing on, as `Tracing: Active` makes it on Lambda), and
prints one JSON line; `measure` times it from the parent, process start to that line. The floor is
the same measurement of ``import boto3, numpy; boto3.client("s3")``, which any numpy function that
reads S3 pays; the headline is the ratio of the two, so that the machine's speed cancels out.

    python -m bench.coldstart child functions.similar.app events/similar.json   # one cold start
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARK = "COLD-START-DONE "  # the child's answer line; metrics are printed to stdout too
FLOOR = f"import boto3, numpy; boto3.client('s3'); print('{MARK}{{}}', flush=True)"
#: The floor of the shipped layout, as the issue states it: `python -c "import numpy"` (the layer's).
NUMPY_FLOOR = f"import numpy; print('{MARK}{{}}', flush=True)"

#: What Lambda sets in a function's environment that the code under test reacts to: the function's
#: name (tracing is on inside Lambda only: `recsys.tracing`), the task root (the X-Ray SDK's Lambda
#: mode), the trace header of the invocation and the daemon address (UDP on loopback, nobody listens).
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
}


class Context:
    """The attributes of Lambda's context object that the handlers read."""

    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench-cold-start"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def child(module: str, event_file: str) -> None:
    """Import the handler module and answer one event, as a cold Lambda container does.

    Prints the status, the model bytes read and the AWS SDK modules imported by then.
    """
    import importlib

    handler = importlib.import_module(module).lambda_handler
    response = handler(json.loads(Path(event_file).read_text()), Context())
    store = getattr(getattr(sys.modules[module], "runtime", None), "store", None)
    sdk = sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "s3transfer", "aws_xray_sdk"))
    answer = {"status": response["statusCode"], "bytes_read": getattr(store, "bytes_read", None), "modules": sdk}
    print(MARK + json.dumps(answer), flush=True)


def run_once(cmd: list[str], env: Mapping[str, str]) -> tuple[float, dict[str, Any]]:
    """Seconds from starting `cmd` to the JSON line it prints, and that line."""
    import subprocess  # here, not at the top: the child imports this module too, and needs neither

    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = ""
    for line in proc.stdout:  # noqa: B007 - the loop stops at the answer line
        if line.startswith(MARK):
            break
    seconds = time.perf_counter() - started
    _, err = proc.communicate(timeout=60)
    if proc.returncode != 0 or not line.startswith(MARK):
        raise RuntimeError(f"{' '.join(cmd[-3:])} failed ({proc.returncode}): {err[-2000:]}")
    return seconds, json.loads(line.removeprefix(MARK))


def measure(
    python: str,
    functions: Mapping[str, tuple[str, str, Mapping[str, str]]],
    repeats: int = 5,
    floor_code: str = FLOOR,
) -> dict[str, Any]:
    """Median of `repeats` cold starts of each function and of the floor, interleaved.

    `functions` maps a name to (handler module, event file, environment); the floor runs
    `floor_code` in the first function's environment. Runs alternate between the floor and the
    functions, so that a busy spell of the machine touches both alike.
    """
    import statistics

    floor_env = next(iter(functions.values()))[2]
    floors: list[float] = []
    runs: dict[str, list[tuple[float, dict[str, Any]]]] = {name: [] for name in functions}
    for _ in range(repeats):
        floors.append(run_once([python, "-c", floor_code], floor_env)[0])
        for name, (module, event, env) in functions.items():
            runs[name].append(run_once([python, "-m", "bench.coldstart", "child", module, event], env))
    floor = statistics.median(floors)
    out: dict[str, Any] = {"floor_s": {"median": floor, "min": min(floors), "max": max(floors), "n": repeats}}
    for name, results in runs.items():
        seconds = [s for s, _ in results]
        statuses = sorted({r["status"] for _, r in results})
        median = statistics.median(seconds)
        out[name] = {
            "first_200_s": {"median": median, "min": min(seconds), "max": max(seconds), "n": repeats},
            "vs_floor": median / floor,
            "statuses": statuses,
            "bytes_read": results[0][1]["bytes_read"],
        }
    return out


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "child":
        raise SystemExit(__doc__)
    child(sys.argv[2], sys.argv[3])
