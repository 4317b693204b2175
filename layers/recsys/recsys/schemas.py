"""Request parameter types and response models of the API (they generate docs/openapi.json)."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, Field

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
    fallback: Literal["unknown_user"] | None = None
    items: list[Recommendation]


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


class Similar(BaseModel):
    model_version: str
    movie: Movie
    items: list[SimilarMovie]


class PopularMovie(Movie):
    likes: int


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


class ErrorBody(BaseModel):
    error: ErrorDetail
