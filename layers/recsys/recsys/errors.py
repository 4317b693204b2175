"""Errors of the recommender, one type per thing that can go wrong.

The tree, and the HTTP status `recsys.api` maps each branch to::

    RecsysError
    ├── InvalidRequestError          400  a parameter is malformed or out of range
    ├── NotFoundError                404
    │   ├── UnknownUserError              no such user in the model
    │   └── UnknownMovieError             no such movie in the model
    ├── LimitExceededError           409  a visitor's stored likes would pass the cap
    ├── ForgottenVisitorError        410  the visitor asked to be forgotten: their id takes no more likes
    ├── FeedbackUnavailableError     503  the feedback table did not answer (after retries)
    ├── EventsUnavailableError       503  the events table did not answer (after retries)
    ├── ModelUnavailableError        503  no model could be loaded (S3 down, bad pointer, ...)
    │   └── ModelIntegrityError           the bytes fail the size/sha256 check or the unpickler's allow-list
    └── ConfigurationError           503  the function's settings are missing or invalid
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base of every error this package raises on purpose."""

    code = "error"


class InvalidRequestError(RecsysError):
    code = "invalid_request"


class NotFoundError(RecsysError):
    code = "not_found"


class UnknownUserError(NotFoundError):
    code = "unknown_user"

    def __init__(self, user_id: int) -> None:
        super().__init__(f"user {user_id} is not in the model")
        self.user_id = user_id


class UnknownMovieError(NotFoundError):
    code = "unknown_movie"

    def __init__(self, movie_id: int) -> None:
        super().__init__(f"movie {movie_id} is not in the model")
        self.movie_id = movie_id


class UnknownGenreError(NotFoundError):
    code = "unknown_genre"

    def __init__(self, genre: str, known: tuple[str, ...]) -> None:
        super().__init__(f"genre {genre!r} is not in the model; it knows {', '.join(known)}")
        self.genre = genre


class LimitExceededError(RecsysError):
    code = "like_cap"


class ForgottenVisitorError(RecsysError):
    code = "visitor_forgotten"

    def __init__(self, visitor_id: str) -> None:
        super().__init__(f"visitor {visitor_id} was forgotten and takes no more likes; make a new id")


class FeedbackUnavailableError(RecsysError):
    code = "feedback_unavailable"


class EventsUnavailableError(RecsysError):
    code = "events_unavailable"


class ModelUnavailableError(RecsysError):
    code = "model_unavailable"


class ModelIntegrityError(ModelUnavailableError):
    code = "model_integrity"


class ConfigurationError(RecsysError):
    code = "misconfigured"
