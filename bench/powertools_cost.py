"""What powertools would add to an API function's cold start, against the project's own modules.

Each case runs in a fresh interpreter, after ``import numpy`` (which every function pays anyway),
and times only its own imports and set-up, in process: the median of `REPEATS` runs, in ms.

    python -m bench.powertools_cost        # a markdown table (docs/OPERATIONS.md shows one)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 9

CASES = {
    "powertools' REST resolver": (
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver\n"
        "app = APIGatewayRestResolver()"
    ),
    "powertools' REST resolver with validation (pydantic)": (
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver\n"
        "app = APIGatewayRestResolver(enable_validation=True)\n"
        "@app.get('/x/<n>')\n"
        "def x(n: int) -> dict: return {}\n"
        "app.resolve({'httpMethod': 'GET', 'path': '/x/1', 'resource': '/x/{n}', 'headers': {},"
        " 'requestContext': {'requestId': 'r', 'stage': 'Prod'}}, None)"
    ),
    "powertools' Logger and Metrics": (
        "from aws_lambda_powertools import Logger, Metrics\nlogger = Logger(service='s')\n"
        "metrics = Metrics(namespace='N', service='s')"
    ),
    "powertools' Tracer (the X-Ray SDK)": "from aws_lambda_powertools import Tracer\ntracer = Tracer(service='s')",
    "the project's own (recsys.api, routing, telemetry, tracing)": (
        "from recsys import api, routing, telemetry, tracing\napp = api.App()\n"
        "metrics = telemetry.Metrics('N')\ntracer = tracing.create_tracer()"
    ),
}

TIMED = """
import time, numpy
started = time.perf_counter()
{code}
print((time.perf_counter() - started) * 1000)
"""


def measure(code: str) -> float:
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'layers/recsys'}", "POWERTOOLS_TRACE_DISABLED": "false",
           "AWS_LAMBDA_FUNCTION_NAME": "bench", "PATH": "/usr/bin:/bin"}  # fmt: skip
    runs = []
    for _ in range(REPEATS):
        done = subprocess.run([sys.executable, "-c", TIMED.format(code=code)], env=env, capture_output=True,
                              text=True, check=True, timeout=120)  # fmt: skip
        runs.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def main() -> int:
    print(f"| after `import numpy`, in process, median of {REPEATS} fresh interpreters | ms |")
    print("|---|---|")
    for name, code in CASES.items():
        print(f"| {name} | {measure(code):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
