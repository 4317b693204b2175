"""Place the real MovieLens 100K at data/ml-100k: from GroupLens when reachable, else from the
PyPI wheel of recbole 1.2.1, which ships it (recbole/dataset_example/ml-100k, RecBole atomic files)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from training.datasets import DataError, download_grouplens

TARGET = Path("data/ml-100k")


def from_recbole(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "recbole==1.2.1", "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("recbole-1.2.1-*.whl"))
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
                (target / name).write_bytes(archive.read(f"recbole/dataset_example/ml-100k/{name}"))


def main() -> int:
    if any(TARGET.glob("*.inter")) or (TARGET / "u.data").exists():
        print(f"{TARGET} is already there")
        return 0
    try:
        folder = download_grouplens("ml-100k", Path("data/.grouplens"), timeout=10)
        TARGET.parent.mkdir(exist_ok=True)
        folder.rename(TARGET)
        print(f"downloaded ML-100K from GroupLens into {TARGET}")
    except DataError as exc:
        print(f"GroupLens is not reachable ({exc.__cause__}); taking ML-100K from the recbole 1.2.1 wheel")
        from_recbole(TARGET)
        print(f"extracted ML-100K (RecBole atomic files) into {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
