"""Reading MovieLens ratings and movie metadata in the GroupLens and RecBole formats.

Formats, detected from the file names:

========================  ==================================  ===========  ==============
format                    files                               separator    ratings
========================  ==================================  ===========  ==============
``ml-100k``               ``u.data`` + ``u.item``             tab / pipe   1..5 whole
``ml-1m`` / ``ml-10m``    ``ratings.dat`` + ``movies.dat``    ``::``       0.5..5 halves
``ml-latest``             ``ratings.csv`` + ``movies.csv``    comma        0.5..5 halves
``recbole``               ``*.inter`` + ``*.item``            tab          1..5 whole
========================  ==================================  ===========  ==============

Ratings are parsed by pandas' C engine (10M rows in seconds); a row that does not parse is kept
out and reported with its line number and text, never silently dropped.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

GROUPLENS = "https://files.grouplens.org/datasets/movielens/{name}.zip"
DATASET_NAMES = ("ml-100k", "ml-1m", "ml-10m", "ml-latest-small", "ml-latest")
WHOLE_STARS = np.arange(1.0, 5.5, 1.0)
HALF_STARS = np.arange(0.5, 5.5, 0.5)
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$")


class DataError(ValueError):
    """The ratings cannot be read or are unusable; the message says which file and why."""


@dataclass(frozen=True)
class BadRow:
    line: int
    text: str
    reason: str


@dataclass
class Movies:
    """Movie metadata, aligned by position. `years` is 0 where unknown."""

    ids: np.ndarray
    titles: list[str]
    years: np.ndarray
    genres: list[list[str]]


@dataclass
class RawRatings:
    """Ratings as parsed, before cleaning. `lines` are 1-based line numbers in the file."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    lines: np.ndarray
    total_rows: int
    bad_rows: list[BadRow] = field(default_factory=list)
    bad_count: int = 0
    movies: Movies | None = None
    source: str = ""
    format: str = ""


@dataclass(frozen=True)
class Layout:
    format: str
    ratings: Path
    movies: Path | None
    separator: str
    header: bool
    scale: np.ndarray


def detect(path: Path) -> Layout:
    """Which format a folder (or a ratings file) is in."""
    folder = path if path.is_dir() else path.parent
    name = None if path.is_dir() else path.name

    def pick(candidates: list[str]) -> Path | None:
        for c in candidates:
            hits = sorted(folder.glob(c))
            if hits:
                return hits[0]
        return None

    if name in (None, "u.data") and (folder / "u.data").exists():
        return Layout("ml-100k", folder / "u.data", pick(["u.item"]), "\t", False, WHOLE_STARS)
    if name in (None, "ratings.dat") and (folder / "ratings.dat").exists():
        return Layout("ml-1m/ml-10m", folder / "ratings.dat", pick(["movies.dat"]), "::", False, HALF_STARS)
    if name in (None, "ratings.csv") and (folder / "ratings.csv").exists():
        return Layout("ml-latest", folder / "ratings.csv", pick(["movies.csv"]), ",", True, HALF_STARS)
    inter = path if name and name.endswith(".inter") else pick(["*.inter"])
    if inter is not None:
        return Layout("recbole", inter, pick([inter.stem + ".item", "*.item"]), "\t", True, WHOLE_STARS)
    raise DataError(f"{path}: no MovieLens ratings found (expected u.data, ratings.dat, ratings.csv or *.inter)")


def read_ratings(path: Path, sample_limit: int = 5) -> RawRatings:
    """Parse the ratings (and movie metadata, when present) of a local folder or file."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    layout = detect(path)
    data = layout.ratings.read_bytes()
    raw = parse_ratings(data, layout.separator, layout.header, layout.scale, sample_limit)
    raw.source, raw.format = str(layout.ratings), layout.format
    if layout.movies is not None:
        raw.movies = read_movies(layout.movies, layout.format)
    return raw


def parse_ratings(data: bytes, separator: str, header: bool, scale: np.ndarray, sample_limit: int = 5) -> RawRatings:
    """Parse ``user<sep>movie<sep>rating<sep>timestamp`` rows.

    A row is bad when a field is missing or extra, an id is not a whole number, the rating is not
    on `scale`, or the timestamp is not a number. Blank lines are skipped silently.
    """
    sep = separator
    if len(separator) > 1:  # the C engine wants one character; "::" never occurs inside a field
        data, sep = data.replace(separator.encode(), b"\t"), "\t"
    names = ["user", "item", "rating", "timestamp"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(
                io.BytesIO(data),
                sep=sep,
                header=None,
                names=names,
                skiprows=1 if header else 0,
                engine="c",
                on_bad_lines="warn",
                skip_blank_lines=False,
                encoding="latin-1",
                quoting=3,  # QUOTE_NONE: ratings are numbers; a quote is just a bad character
            )
        except pd.errors.EmptyDataError:
            frame = pd.DataFrame(columns=names)
    first = 2 if header else 1
    skipped: dict[int, str] = {}
    for w in caught:
        for m in re.finditer(r"Skipping line (\d+): (.*)", str(w.message)):
            skipped[int(m.group(1))] = m.group(2).strip()
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    all_lines = np.arange(first, n_lines + 1, dtype=np.int64)
    lines = np.setdiff1d(all_lines, np.fromiter(skipped, dtype=np.int64)) if skipped else all_lines
    lines = lines[: len(frame)]

    blank = frame.isna().all(axis=1).to_numpy()
    cols = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64) for c in names}
    user, item, rating, ts = cols["user"], cols["item"], cols["rating"], cols["timestamp"]
    reason = np.full(len(frame), "", dtype=object)
    reason[np.isnan(ts)] = "timestamp is not a number"
    on_scale = np.isin(rating, scale)
    reason[~on_scale] = f"rating is not one of {_describe_scale(scale)}"
    for name, col in (("movie id", item), ("user id", user)):
        reason[~(np.isfinite(col) & (col == np.floor(col)) & (np.abs(col) < 2**53))] = f"{name} is not a whole number"
    missing = frame.isna().any(axis=1).to_numpy() & ~blank
    reason[missing & frame.iloc[:, 1:].isna().all(axis=1).to_numpy()] = "missing fields"
    reason[blank] = ""
    bad = (reason != "") & ~blank

    bad_lines = [(ln, f"expected 4 fields, {msg.split(', ')[-1]}") for ln, msg in skipped.items()]
    bad_lines += list(zip(lines[bad].tolist(), reason[bad].tolist(), strict=True))
    bad_lines.sort()
    good = ~bad & ~blank
    samples = [BadRow(ln, _line_text(data, ln, separator, sep), why) for ln, why in bad_lines[:sample_limit]]
    return RawRatings(
        users=user[good].astype(np.int64),
        items=item[good].astype(np.int64),
        ratings=rating[good].astype(np.float32),
        timestamps=ts[good].astype(np.int64),
        lines=lines[good],
        total_rows=int(good.sum()) + len(bad_lines),
        bad_rows=samples,
        bad_count=len(bad_lines),
    )


def _describe_scale(scale: np.ndarray) -> str:
    step = float(scale[1] - scale[0])
    return f"{scale[0]:g}..{scale[-1]:g} in steps of {step:g}"


def _line_text(data: bytes, line: int, separator: str, sep: str) -> str:
    """The text of 1-based `line` (with the original separator), for an error message."""
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    start = 0 if line == 1 else int(newlines[line - 2]) + 1
    end = int(newlines[line - 1]) if line - 1 < newlines.size else len(data)
    text = data[start:end].decode("latin-1").rstrip("\r")
    if separator != sep:
        text = text.replace(sep, separator)
    return text[:200]


def read_movies(path: Path, fmt: str) -> Movies:
    """Movie ids, titles, years and genres from the metadata file of a format."""
    text = _decode(path.read_bytes())
    if fmt == "ml-100k":
        frame = pd.read_csv(io.StringIO(text), sep="|", header=None, quoting=3, dtype=str, keep_default_na=False)
        flags = frame.iloc[:, 5 : 5 + len(ML100K_GENRES)].to_numpy() == "1"
        genres = [[g for g, on in zip(ML100K_GENRES, row, strict=False) if on and g not in PLACEHOLDER_GENRES]
                  for row in flags]  # fmt: skip
        return _movies(frame[0], frame[1], genres)
    if fmt == "ml-1m/ml-10m":
        rows = [line.split("::") for line in text.splitlines() if line.strip()]
        return _movies([r[0] for r in rows], [r[1] for r in rows], [_split_genres(r[2], "|") for r in rows])
    if fmt == "ml-latest":
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        return _movies(frame["movieId"], frame["title"], [_split_genres(g, "|") for g in frame["genres"]])
    # RecBole atomic .item: columns named "field:type"; titles come without the year.
    frame = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    title_col = next(c for c in ("movie_title", "title") if c in frame.columns)
    years = frame["release_year"] if "release_year" in frame.columns else None
    genres = [_split_genres(g, " ") for g in frame.get("class", pd.Series([""] * len(frame)))]
    return _movies(frame["item_id"], frame[title_col], genres, years)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # the older GroupLens files are latin-1
        return raw.decode("latin-1")


#: What the datasets write where a movie's genre is not known: not a genre, so never offered as one.
PLACEHOLDER_GENRES = frozenset({"unknown", "(no genres listed)"})
#: The title ML-100K gives its placeholder row (movie 267: no year, genre "unknown"), which is no
#: movie; RecBole 1.2.1's copy (what `make data` fetches) spells it "unkonwn".
PLACEHOLDER_TITLES = frozenset({"unknown", "unkonwn"})


def placeholder_movies(movies: Movies | None) -> np.ndarray:
    """The ids of the metadata's rows that stand for no movie: a placeholder title and no year."""
    if movies is None:
        return np.zeros(0, dtype=np.int64)
    found = [i for i, (title, year) in enumerate(zip(movies.titles, movies.years.tolist(), strict=True))
             if title.strip().casefold() in PLACEHOLDER_TITLES and year == 0]  # fmt: skip
    return movies.ids[found].astype(np.int64)


def _split_genres(field: str, sep: str) -> list[str]:
    return [g for g in field.split(sep) if g and g not in PLACEHOLDER_GENRES]


def _movies(ids: Iterable[Any], titles: Iterable[Any], genres: list[list[str]], years: Any = None) -> Movies:
    """Movies from parallel columns (lists or pandas Series; `years` a Series or None)."""
    out_ids: list[int] = []
    out_titles: list[str] = []
    out_years: list[int] = []
    out_genres: list[list[str]] = []
    for n, (raw_id, raw_title) in enumerate(zip(ids, titles, strict=True)):
        try:
            movie_id = int(str(raw_id).strip())
        except ValueError:
            continue  # a metadata row without a usable id can describe no rated movie
        title, year = str(raw_title).strip(), 0
        match = _TITLE_YEAR.match(title)
        if match:
            title, year = match.group("title"), int(match.group("year"))
        if years is not None and str(years.iloc[n]).strip().isdigit():
            year = int(str(years.iloc[n]).strip())
        out_ids.append(movie_id)
        out_titles.append(title)
        out_years.append(year)
        out_genres.append(genres[n])
    return Movies(np.asarray(out_ids, dtype=np.int64), out_titles, np.asarray(out_years, dtype=np.int16), out_genres)


# -- sources ----------------------------------------------------------------------------------


def resolve_source(source: str, cache_dir: Path, s3_client_factory: Callable[[], Any] | None = None) -> Path:
    """A local path holding the ratings of `source`: a path, an ``s3://`` URI, or a dataset name."""
    if source.startswith("s3://"):
        return _download_s3(source, cache_dir, s3_client_factory)
    if source in DATASET_NAMES:
        return download_grouplens(source, cache_dir)
    return Path(source)


def download_grouplens(name: str, cache_dir: Path, timeout: float = 20.0) -> Path:
    """Download and unzip a GroupLens dataset into `cache_dir` (once); return its folder."""
    target = cache_dir / name
    if target.exists() and any(target.iterdir()):
        return _dataset_folder(target)
    url = GROUPLENS.format(name=name)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https URL
            payload = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(
            f"cannot download {name} from {url} ({exc}); without network, run `make data` for the "
            "bundled ML-100K and pass --ratings data/ml-100k"
        ) from exc
    tmp = Path(tempfile.mkdtemp(dir=cache_dir.parent if cache_dir.parent.exists() else None))
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        archive.extractall(tmp)
    cache_dir.mkdir(parents=True, exist_ok=True)
    shutil.move(str(tmp), str(target))
    return _dataset_folder(target)


def _dataset_folder(root: Path) -> Path:
    """The folder inside an unzipped archive that holds the ratings."""
    for pattern in ("u.data", "ratings.dat", "ratings.csv", "*.inter"):
        hits = sorted(root.rglob(pattern))
        if hits:
            return hits[0].parent
    raise DataError(f"{root}: the archive holds no MovieLens ratings")


def _download_s3(uri: str, cache_dir: Path, client_factory: Callable[[], Any] | None) -> Path:
    """Copy an s3:// file, or every file under an s3:// prefix, into a local folder."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise DataError(f"{uri}: an s3:// source names a bucket, as in s3://bucket/ml-100k/")
    try:
        client = client_factory() if client_factory else boto3.client("s3")
        paginator = client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=key)
        keys = [o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")]
        exact = [k for k in keys if k == key]
        folder = key.rstrip("/") + "/" if key else ""
        keys = exact or [k for k in keys if k.startswith(folder)]  # s3://b/ml-100k is not s3://b/ml-100k-old
        if not keys:
            raise DataError(f"{uri}: no such object or prefix")
        target = Path(tempfile.mkdtemp(prefix="ratings-", dir=cache_dir if cache_dir.exists() else None))
        for k in keys:
            client.download_file(bucket, k, str(target / Path(k).name))
    except (ClientError, BotoCoreError) as exc:
        raise DataError(f"{uri}: cannot read the ratings from S3: {exc}") from exc
    return target / Path(key).name if exact else target
