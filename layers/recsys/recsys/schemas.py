"""Request parameter types and response models of the API (they generate docs/openapi.json)."""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Interval
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

MAX_ID = 2**31 - 1

UserId = Annotated[int, Path(ge=0, le=MAX_ID, description="The dataset's own user id")]
MovieId = Annotated[int, Path(ge=0, le=MAX_ID, description="The dataset's own movie id")]
K = Annotated[int, Query(ge=1, le=100, description="How many items (1..100)")]
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="Items to skip")]
Seed = Annotated[int, Query(ge=0, le=MAX_ID, description="Sample seed; the same seed gives the same users")]
Kind = Annotated[Literal["personalized", "popularity"], Query(description="Which recommender")]
Genre = Annotated[str | None, Query(max_length=64, description="Only movies of this genre")]
Explain = Annotated[bool, Query(description="List liked movies behind each personalized pick")]
SearchQuery = Annotated[str, Query(max_length=200, description="Words of the title; empty: most popular")]


class Movie(BaseModel):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]


class Recommendation(Movie):
    score: float
    because_you_liked: list[Movie] | None = None


class Recommendations(BaseModel):
    model_version: str
    user_id: int
    model: Literal["personalized", "popularity"]
    k: int
    genre: str | None
    fallback: Literal["unknown_user", "no_likes"] | None = Field(
        None,
        description="Why popularity answered a personalized request: the user is not in the model "
        "(unknown_user), or rated movies but liked none (no_likes; their rated movies are still excluded)",
    )
    items: list[Recommendation]


MAX_TASTE_IDS = 500


def _json_integer(value: object) -> object:
    """JSON integers only: 7 and 7.0 pass on to int validation; "7" and true do not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a whole number")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
# the bounds before the validator, or pydantic writes them as "ge"/"le" instead of minimum/maximum
TasteId = Annotated[int, Interval(ge=0, le=MAX_ID), BeforeValidator(_json_integer)]


class Taste(BaseModel):
    """A visitor's taste: movies they like (and optionally dislike). Nothing is stored."""

    model_config = ConfigDict(extra="forbid")

    liked: list[TasteId] = Field(
        max_length=MAX_TASTE_IDS,
        description="Movie ids the visitor likes; duplicates count once, unknown ids are ignored",
    )
    disliked: list[TasteId] = Field(
        default_factory=list, max_length=MAX_TASTE_IDS, description="Movie ids never to recommend"
    )
    k: JsonInt = Field(10, ge=1, le=100, description="How many items (1..100)")
    genre: str | None = Field(None, max_length=64, description="Only movies of this genre")
    explain: StrictBool = Field(False, description="List liked movies behind each personalized pick")


class TasteRecommendations(BaseModel):
    model_version: str
    model: Literal["personalized", "popularity"]
    k: int
    genre: str | None
    fallback: Literal["no_known_likes"] | None = Field(
        None, description="No liked id is in the model: popularity answered, minus the liked and disliked movies"
    )
    liked: list[int] = Field(description="The liked ids the model knows, once each, in the order given")
    ignored: list[int] = Field(description="Liked or disliked ids the model does not know")
    items: list[Recommendation] = Field(description="Never one of the liked or disliked movies")


class Liked(Movie):
    rating: float
    rated_at: str = Field(description="ISO date")


class History(BaseModel):
    model_version: str
    user_id: int
    total: int
    offset: int
    k: int
    items: list[Liked]


class UserSummary(BaseModel):
    user_id: int
    likes: int
    top_genres: list[str]


class Users(BaseModel):
    model_version: str
    seed: int
    items: list[UserSummary]


class SimilarMovie(Movie):
    similarity: float


class PopularMovie(Movie):
    likes: int


class Similar(BaseModel):
    model_version: str
    movie: PopularMovie = Field(description="The movie asked about, with how many users liked it in training")
    basis: Literal["model", "genres"] = Field(
        description="model: nearest LightFM item vectors (cosine). genres: nobody liked this movie in training, "
        "so its vector carries no signal; the neighbours are liked movies sharing most of its genres (Jaccard)"
    )
    items: list[SimilarMovie] = Field(description="Never a movie that nobody liked in training")


class Movies(BaseModel):
    model_version: str
    query: str
    items: list[PopularMovie]


class ModelInfo(BaseModel):
    model_version: str
    created_at: str | None
    users: int
    movies: int
    genres: list[str]
    data: dict[str, object]
    params: dict[str, object]
    metrics: dict[str, object]
    libraries: dict[str, str]


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None = Field(None, description="On a 5xx: quote it to find the cause in the logs")


class ErrorBody(BaseModel):
    error: ErrorDetail
