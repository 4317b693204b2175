from __future__ import annotations

from pathlib import Path

import pytest

from training.cleaning import clean
from training.datasets import DataError, read_ratings
from training.model import catalogue

pytestmark = pytest.mark.unit


def write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(text.encode(encoding))
    return folder


def test_ml100k_with_latin1_titles(tmp_path: Path) -> None:
    write(tmp_path, "u.data", "1\t10\t5\t100\n2\t10\t3\t200\n")
    write(
        tmp_path,
        "u.item",
        "10|Misérables, Les (1995)|01-Jan-1995||http://x|0|0|0|0|0|1|0|0|1|0|0|0|0|0|0|0|0|0|0\n",
        "latin-1",
    )
    raw = read_ratings(tmp_path)
    assert raw.format == "ml-100k" and raw.users.tolist() == [1, 2]
    assert raw.movies.titles == ["Misérables, Les"] and raw.movies.years.tolist() == [1995]
    assert raw.movies.genres == [["Comedy", "Drama"]]


def test_ml10m_half_stars_and_double_colon(tmp_path: Path) -> None:
    write(tmp_path, "ratings.dat", "1::122::4.5::838985046\n1::185::0.5::838983525\n")
    write(
        tmp_path, "movies.dat", "122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action|Crime|Thriller\n"
    )
    raw = read_ratings(tmp_path)
    assert raw.ratings.tolist() == [4.5, 0.5] and raw.bad_count == 0
    assert raw.movies.genres[0] == ["Comedy", "Romance"]


def test_ml_latest_quoted_titles_with_commas(tmp_path: Path) -> None:
    write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n")
    write(tmp_path, "movies.csv", 'movieId,title,genres\n1,"American President, The (1995)",Comedy|Drama|Romance\n')
    raw = read_ratings(tmp_path)
    assert raw.movies.titles == ["American President, The"] and raw.movies.years.tolist() == [1995]


def test_recbole_atomic_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        "ml-100k.inter",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n",
    )
    write(
        tmp_path,
        "ml-100k.item",
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n242\tKolya\t1996\tComedy\n",
    )
    raw = read_ratings(tmp_path)
    assert raw.format == "recbole" and raw.items.tolist() == [242]
    assert raw.movies.titles == ["Kolya"] and raw.movies.years.tolist() == [1996]


def test_bad_rows_are_counted_with_line_numbers(tmp_path: Path) -> None:
    # GIVEN a file with a non-numeric id, an off-scale rating, a missing field and an extra field
    text = "1::1::4::1\nx::1::4::2\n1::2::7::3\n1::3::4\n\n1::4::4::4::9\n2::1::3.5::5\n"
    raw = read_ratings(write(tmp_path, "ratings.dat", text))
    # THEN the four bad rows are named by line, the blank line is ignored, the good rows kept
    assert [b.line for b in raw.bad_rows] == [2, 3, 4, 6]
    assert "user id" in raw.bad_rows[0].reason and "rating" in raw.bad_rows[1].reason
    assert raw.bad_rows[3].text == "1::4::4::4::9"
    assert raw.users.tolist() == [1, 2] and raw.total_rows == 6


def test_too_many_bad_rows_stop_the_job(tmp_path: Path) -> None:
    raw = read_ratings(write(tmp_path, "ratings.dat", "1::1::4::1\nbad line\n"))
    with pytest.raises(DataError, match=r"line 2"):
        clean(raw, min_rating=4.0, max_bad_fraction=0.01)


def test_duplicates_keep_the_latest_rating(tmp_path: Path) -> None:
    raw = read_ratings(write(tmp_path, "ratings.dat", "1::1::2::50\n1::1::5::40\n1::1::4::60\n2::1::5::1\n"))
    data = clean(raw, min_rating=4.0, max_bad_fraction=0.01)
    assert data.summary["duplicates"] == 2
    assert data.ratings.tolist() == [4.0, 5.0]


def test_no_positive_is_a_clear_error(tmp_path: Path) -> None:
    raw = read_ratings(write(tmp_path, "ratings.dat", "1::1::2::50\n"))
    with pytest.raises(DataError, match="no rating is >= --min-rating 4"):
        clean(raw, min_rating=4.0, max_bad_fraction=0.01)


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no MovieLens ratings found"):
        read_ratings(write(tmp_path, "readme.txt", "hello"))


def test_the_datasets_placeholder_movie_and_genre_are_not_movies_or_genres(tmp_path: Path) -> None:
    # GIVEN ML-100K's placeholder row (267: title "unknown", no year, genre "unknown"), a real movie
    # whose only genre flag is "unknown", and a movie with genres, each liked
    flags = {"unknown": "1|" + "|".join(["0"] * 18), "drama": "0|" + "|".join(["0"] * 7) + "|1|" + "|".join(["0"] * 10)}
    write(tmp_path, "u.data", "1\t267\t5\t100\n1\t1373\t5\t101\n1\t10\t5\t102\n2\t10\t4\t103\n2\t267\t4\t104\n")
    write(tmp_path, "u.item", f"267|unknown||||{flags['unknown']}\n"
                              f"1373|Good Morning (1971)|04-Feb-1971||x|{flags['unknown']}\n"
                              f"10|Richard III (1995)|22-Jan-1996||x|{flags['drama']}\n")  # fmt: skip
    raw = read_ratings(tmp_path)
    # WHEN the ratings are cleaned and the catalogue built
    data = clean(raw, min_rating=4.0, max_bad_fraction=0.01)
    cat = catalogue(data.item_ids, raw.movies)
    # THEN the placeholder's ratings are left out and reported; the real movie stays, with no genre;
    # and "unknown" is no genre
    assert data.item_ids.tolist() == [10, 1373] and data.summary["ratings"] == 3
    assert data.summary["placeholders"]["movies"] == [267] and data.summary["placeholders"]["ratings"] == 2
    assert data.summary["duplicates"] == 0
    assert cat.genre_names == ["Drama"] and cat.titles == ["Richard III", "Good Morning"]


def test_recboles_copy_of_the_placeholder_is_no_movie_either(tmp_path: Path) -> None:
    # GIVEN RecBole's ML-100K files, whose placeholder row is spelled "unkonwn" (as `make data` fetches them)
    write(tmp_path, "ml-100k.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                     "1\t267\t5\t1\n1\t10\t5\t2\n")  # fmt: skip
    write(tmp_path, "ml-100k.item", "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                    "267\tunkonwn\tunkonwn\tunknown\n10\tRichard III\t1995\tDrama War\n")  # fmt: skip
    raw = read_ratings(tmp_path)
    # WHEN cleaned THEN its ratings are left out, and "unknown" is no genre
    data = clean(raw, min_rating=4.0, max_bad_fraction=0.01)
    assert data.item_ids.tolist() == [10] and data.summary["placeholders"]["movies"] == [267]
    assert raw.movies.genres[0] == []
