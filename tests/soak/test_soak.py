"""Ten minutes of mixed traffic on the local API: no errors, and resident memory flat after warm-up.

Run by `make test-soak` (marker `soak`; not part of `make test`). SOAK_SECONDS shortens it.
Figures go to test-artifacts/soak.json and are summarized in docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from tests import data
from tests.conftest import ROOT
from tests.load import drive, local_api, rss_mb

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
RATE = 100.0
WARM_UP = min(60.0, SECONDS / 5)
MARGIN_MB = 16.0  # allocator noise; a leak of even 1 KB per request would be ~60 MB here


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, checkerboard_dir: Path) -> Path:
    """The real ML-100K model when `make data` has run (it has under make), else the checkerboard."""
    out = tmp_path_factory.mktemp("soak-store")
    ratings = ROOT / "data" / "ml-100k"
    assert data.train(ratings if ratings.exists() else checkerboard_dir, str(out), "--cache-dir",
                      str(ROOT / "build" / "cache")) == 0  # fmt: skip
    return out


@pytest.mark.timeout(SECONDS + 600)
def test_ten_minutes_of_mixed_traffic(store: Path) -> None:
    pointer = json.loads((store / "latest.json").read_text())
    model = json.loads((store / "models" / pointer["version"] / "metrics.json").read_text())
    users, movies = model["data"]["users"], model["data"]["movies"]
    rng = np.random.default_rng(0)

    def target(i: int) -> str:
        u, m = int(rng.integers(1, users + 1)), int(rng.integers(1, movies + 1))
        return [f"/recommendations/{u}?k=10&explain=true", f"/recommendations/{u}?model=popularity",
                f"/users/{u}/history?k=20", f"/movies/{m}/similar?k=10", "/movies?query=star", f"/users?seed={i % 50}",
                f"/recommendations/{u}?k=0", "/model"][i % 8]  # fmt: skip

    samples: list[tuple[float, float]] = []
    with local_api(str(store)) as (base, proc):
        stop = threading.Event()

        def sample() -> None:
            t = 0.0
            while not stop.wait(5.0):
                t += 5.0
                samples.append((t, rss_mb(proc.pid)))

        sampler = threading.Thread(target=sample)
        sampler.start()
        records = drive(base, target, RATE, SECONDS, keep_body=False)
        stop.set()
        sampler.join()

    errors = [r for r in records if r.status not in (200, 400, 404) or r.error]
    statuses = {s: sum(1 for r in records if r.status == s) for s in sorted({r.status for r in records})}
    warm = [rss for t, rss in samples if t >= WARM_UP]
    latencies = np.array([r.seconds for r in records]) * 1000
    figures = {
        "seconds": SECONDS, "requests": len(records), "rate_per_s": len(records) / SECONDS, "errors": len(errors),
        "statuses": statuses, "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "rss_mb_after_warm_up": warm[0], "rss_mb_max": max(warm), "rss_mb_last": warm[-1],
        "rss_growth_mb": max(warm) - warm[0], "rss_samples": samples,
    }  # fmt: skip
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "soak.json").write_text(json.dumps(figures, indent=2))
    assert errors == [], errors[:5]
    assert len(records) == int(RATE * SECONDS)
    assert max(warm) - warm[0] <= MARGIN_MB, samples
