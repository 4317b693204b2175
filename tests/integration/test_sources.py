"""Ratings sources beyond a local folder: s3:// (on a moto server) and GroupLens downloads."""

from __future__ import annotations

import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from training import datasets
from training.cli import main as train_main
from training.datasets import DataError, read_ratings, resolve_source

pytestmark = pytest.mark.integration


def _upload(s3, folder: Path, prefix: str) -> None:  # type: ignore[no-untyped-def]
    for path in folder.iterdir():
        s3.upload_file(str(path), s3.bucket, f"{prefix}/{path.name}")


def test_s3_prefix_trains_and_publishes_like_a_local_folder(s3, checkerboard_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _upload(s3, checkerboard_dir, "datasets/ml-100k")
    _upload(s3, checkerboard_dir, "datasets/ml-100k-old")  # a sibling prefix must not be mixed in
    s3.put_object(Bucket=s3.bucket, Key="datasets/ml-100k-old/u.data", Body=b"1\t1\t9\t1\n")
    local = read_ratings(resolve_source(f"s3://{s3.bucket}/datasets/ml-100k", tmp_path))
    assert local.users.size == read_ratings(checkerboard_dir).users.size and not local.bad_rows
    store = tmp_path / "store"
    code = train_main(["--ratings", f"s3://{s3.bucket}/datasets/ml-100k/", "--model-uri", str(store),
                       "--epochs", "5", "--min-epochs", "1", "--components", "8", "--quiet"])  # fmt: skip
    assert code == 0 and (store / "latest.json").exists()


def test_s3_single_file_is_read_by_its_name(s3, checkerboard_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s3.upload_file(str(checkerboard_dir / "u.data"), s3.bucket, "raw/u.data")
    path = resolve_source(f"s3://{s3.bucket}/raw/u.data", tmp_path)
    assert path.name == "u.data"
    assert read_ratings(path).users.size == read_ratings(checkerboard_dir).users.size


@pytest.mark.parametrize("suffix", ["nothing/here", ""])
def test_s3_missing_prefix_or_bucket_is_a_clear_error(s3, tmp_path: Path, suffix: str) -> None:  # type: ignore[no-untyped-def]
    bucket = s3.bucket if suffix else "no-such-bucket-here"
    with pytest.raises(DataError, match=rf"s3://{bucket}/{suffix}: (no such object|cannot read)"):
        resolve_source(f"s3://{bucket}/{suffix}", tmp_path)


def test_s3_source_error_exits_2_with_a_message(s3, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    code = train_main(["--ratings", f"s3://{s3.bucket}/missing", "--model-uri", str(tmp_path / "store")])
    assert code == 2
    assert "no such object or prefix" in capsys.readouterr().err
    assert not (tmp_path / "store" / "latest.json").exists()


@pytest.fixture
def grouplens(checkerboard_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A local HTTP server standing in for files.grouplens.org, serving ml-100k.zip."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for path in checkerboard_dir.iterdir():
            z.write(path, f"ml-100k/{path.name}")
    payload, requests = archive.getvalue(), []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            requests.append(self.path)
            self.send_response(200 if self.path == "/ml-100k.zip" else 404)
            self.end_headers()
            self.wfile.write(payload if self.path == "/ml-100k.zip" else b"")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(datasets, "GROUPLENS", f"http://127.0.0.1:{server.server_address[1]}/{{name}}.zip")
    yield requests
    server.shutdown()
    server.server_close()


def test_dataset_name_downloads_once_then_reads_the_cache(grouplens: list[str], tmp_path: Path) -> None:
    first = resolve_source("ml-100k", tmp_path / "cache")
    again = resolve_source("ml-100k", tmp_path / "cache")
    assert first == again and (first / "u.data").exists()
    assert grouplens == ["/ml-100k.zip"]  # the second call did not download
    assert read_ratings(first).users.size == 600  # the checkerboard: 40 users x 15 ratings


def test_no_network_names_make_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.conftest import free_port

    monkeypatch.setattr(datasets, "GROUPLENS", f"http://127.0.0.1:{free_port()}/{{name}}.zip")  # refused
    with pytest.raises(DataError, match="make data"):
        resolve_source("ml-1m", tmp_path / "cache")
