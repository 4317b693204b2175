"""The API's types: request parameters, the request body, and the answers (docs/openapi.json).

Parameters are ``Annotated`` with a `recsys.routing` marker, which `recsys.routing` checks each
request against; answers are TypedDicts, which `recsys.service` builds and mypy checks. Nothing
here imports more than ``typing``: a cold start pays for no schema library.

No ``from __future__ import annotations`` here: a TypedDict reads ``NotRequired`` from evaluated
annotations only.
"""

from typing import Annotated, Literal, NamedTuple, NotRequired, TypedDict

from recsys.routing import Body, Path, Query, Spec

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


def doc(text: str) -> Spec:
    """A field's description in the OpenAPI document."""
    return Spec(description=text)


# -- the request body -----------------------------------------------------------------------

MAX_TASTE_IDS = 500
TasteId = Annotated[int, Spec(ge=0, le=MAX_ID)]


class Taste(NamedTuple):
    """A visitor's taste: movies they like (and optionally dislike). Nothing is stored."""

    liked: Annotated[
        tuple[TasteId, ...],
        Spec(
            max_length=MAX_TASTE_IDS,
            description="Movie ids the visitor likes, in the order they liked them: the last is the newest and "
            "weighs most; a repeated id counts once, where it is last; unknown ids are ignored",
        ),
    ]
    disliked: Annotated[
        tuple[TasteId, ...], Spec(max_length=MAX_TASTE_IDS, description="Movie ids never to recommend")
    ] = ()
    k: Annotated[int, Spec(ge=1, le=100, description="How many items (1..100)")] = 10
    genre: Annotated[str | None, Spec(max_length=64, description="Only movies of this genre")] = None
    explain: Annotated[bool, Spec(description="List liked movies behind each personalized pick")] = False


TasteBody = Annotated[Taste, Body()]

#: Movies one feedback request may name, likes and unlikes each (a DynamoDB transaction holds 100 items).
MAX_FEEDBACK_IDS = 48
#: A random UUIDv4, lowercase, as the website's ``crypto.randomUUID()`` makes it (`recsys.feedback`).
VISITOR_ID = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_VISITOR_DOC = "The visitor's random UUIDv4, made once by the website; nothing else identifies them"
VisitorId = Annotated[str, Path(max_length=36, pattern=VISITOR_ID, description=_VISITOR_DOC)]


#: The lists a page shows picks in: `GET /recommendations/{user_id}` (personalized or popularity),
#: `GET /movies/{movie_id}/similar` and `POST /recommendations` (taste).
PickList = Annotated[
    Literal["personalized", "popularity", "similar", "taste"],
    Spec(description="The list the picks were shown in: personalized or popularity (GET /recommendations/{user_id}, "
         "or POST /recommendations before any like), similar (GET /movies/{movie_id}/similar), taste (POST "
         "/recommendations)"),
]
#: A model version as the answers carry it (``model_version``).
ModelVersion = Annotated[
    str, Spec(max_length=128, pattern="^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$",
              description="The answer's model_version; only the serving model's counts")
]
#: Groups of shown picks one feedback request may carry.
MAX_SHOWN_GROUPS = 8
#: Picks one group may count: a page shows at most 100 a list, and sends at least every few lists.
MAX_SHOWN_PICKS = 1000


class Picked(NamedTuple):
    """Where a liked movie was shown to the visitor as a pick (online quality, docs/OPERATIONS.md)."""

    movie_id: Annotated[int, Spec(ge=0, le=MAX_ID, description="The liked movie: one of this request's like")]
    list: PickList
    model_version: ModelVersion
    position: Annotated[int, Spec(ge=1, le=100, description="Its place in the list, 1 for the first")]


class Shown(NamedTuple):
    """Picks a page showed the visitor (impressions), counted per list and model version."""

    list: PickList
    model_version: ModelVersion
    picks: Annotated[int, Spec(ge=1, le=MAX_SHOWN_PICKS, description="How many picks were shown")]


class Feedback(NamedTuple):
    """Movies a visitor liked or stopped liking, stored for the next training (`DELETE` forgets them all),
    and the picks the site showed them (for the like-through rate of each model version and list)."""

    visitor_id: Annotated[str, Spec(max_length=36, pattern=VISITOR_ID, description=_VISITOR_DOC)]
    like: Annotated[
        tuple[TasteId, ...],
        Spec(max_length=MAX_FEEDBACK_IDS, description="Movie ids to store as liked; storing one twice changes nothing"),
    ] = ()
    unlike: Annotated[
        tuple[TasteId, ...],
        Spec(max_length=MAX_FEEDBACK_IDS, description="Movie ids to remove from the likes (also when in like)"),
    ] = ()
    picked: Annotated[
        tuple[Picked, ...],
        Spec(max_length=MAX_FEEDBACK_IDS, description="Likes of picks the site showed: where each was shown. "
             "Stored with a new like of this request (an entry for another movie, or of another model version, "
             "is ignored; the first entry of a movie wins); a like stored before keeps where it came from"),
    ] = ()
    shown: Annotated[
        tuple[Shown, ...],
        Spec(max_length=MAX_SHOWN_GROUPS, description="Picks shown since the last request, per list and model "
             "version. Counted once per request: a request repeated after its answer was lost counts them again"),
    ] = ()


FeedbackBody = Annotated[Feedback, Body()]

#: An ISO 8601 time with its offset, to the second or finer: what `recsys.events.parse_time` reads.
ISO_TIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})"
#: Events one request may carry.
MAX_EVENTS = 100


class UserEvent(NamedTuple):
    """Something a user did on the site: liked a movie, stopped liking it, or rated it."""

    movie_id: Annotated[int, Spec(ge=0, le=MAX_ID, description="The dataset's own movie id")]
    kind: Annotated[
        Literal["like", "unlike", "rating"],
        Spec(description="like and unlike say it directly; rating gives the user's rating, liked from the "
             "model's min_rating (GET /model: params)"),
    ]
    at: Annotated[
        str,
        Spec(max_length=40, pattern=ISO_TIME, description="When, ISO 8601 with its offset (2026-12-06T13:00:00Z); "
             "the latest event of a movie wins, whatever order they arrive in"),
    ]
    rating: Annotated[
        float | None, Spec(ge=0.5, le=5, description="With kind rating: the rating, 0.5 to 5 (MovieLens's scale)")
    ] = None


class Events(NamedTuple):
    """A user's events, sent by the site's backend (signed): served on the user's next request,
    learned by the next training."""

    user_id: Annotated[int, Spec(ge=0, le=MAX_ID, description="The ratings file's user id (a new id is a new user)")]
    events: Annotated[
        tuple[UserEvent, ...],
        Spec(max_length=MAX_EVENTS, description=f"At most {MAX_EVENTS}; retrying a request changes nothing more"),
    ]


EventsBody = Annotated[Events, Body()]


# -- the answers ----------------------------------------------------------------------------


class Movie(TypedDict):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]


class Recommendation(Movie):
    score: Annotated[
        float,
        doc("personalized: the blended score (a weighted sum of z-scores, higher is better); popularity: likes"),
    ]
    because_you_liked: Annotated[list[Movie] | None, doc("With explain: the liked movies behind the pick")]


class Blend(TypedDict):
    lightfm: Annotated[float, doc("LightFM's share of the personalized score")]
    item_item: Annotated[float, doc("The sparse item-item model's share (GET /model: its method, λ, weights)")]


BlendShares = Annotated[
    Blend | None,
    doc("With model=personalized: what the score blends, each part z-scored per user first; otherwise null"),
]


RealTime = Annotated[
    bool | None,
    doc("true: the user's live events (POST /events) are in this answer; false: the events table did not answer "
        "in time, so this is the model's answer alone; null: this stack keeps no events"),
]


class Recommendations(TypedDict):
    model_version: str
    user_id: int
    model: Literal["personalized", "popularity"]
    blend: BlendShares
    k: int
    genre: str | None
    fallback: Annotated[
        Literal["unknown_user", "no_likes"] | None,
        doc(
            "Why popularity answered a personalized request: the user is not in the model (unknown_user), "
            "or rated movies but liked none (no_likes; their rated movies are still excluded)"
        ),
    ]
    realtime: RealTime
    items: list[Recommendation]


class TasteRecommendations(TypedDict):
    model_version: str
    model: Literal["personalized", "popularity"]
    blend: BlendShares
    k: int
    genre: str | None
    fallback: Annotated[
        Literal["no_known_likes"] | None,
        doc("No liked id is in the model: popularity answered, minus the liked and disliked movies"),
    ]
    liked: Annotated[list[int], doc("The liked ids the model knows, once each, oldest first (as given)")]
    ignored: Annotated[list[int], doc("Liked or disliked ids the model does not know")]
    items: Annotated[list[Recommendation], doc("Never one of the liked or disliked movies")]


class FeedbackStored(TypedDict):
    visitor_id: str
    liked: Annotated[list[int], doc("The liked ids the model knows: each is stored, now or before")]
    unliked: Annotated[list[int], doc("The unliked ids the model knows: none is stored any more")]
    ignored: Annotated[list[int], doc("Ids the model does not know; nothing is stored for them")]
    likes: Annotated[int, doc("How many likes the visitor has stored now")]
    shown: Annotated[int, doc("How many of the shown picks were counted: those of the serving model")]


class Forgotten(TypedDict):
    visitor_id: str
    deleted: Annotated[int, doc("How many likes were deleted; the next model is trained without them")]


class EventsStored(TypedDict):
    user_id: int
    stored: Annotated[list[int], doc("Movies whose event is stored (or was, by an earlier try of this request)")]
    stale: Annotated[list[int], doc("Movies with a newer event stored already: this one changed nothing")]
    ignored: Annotated[list[int], doc("Movie ids the model does not know; nothing is stored for them")]


class EventsForgotten(TypedDict):
    user_id: int
    deleted: Annotated[int, doc("How many events were deleted")]
    forgotten_at: Annotated[
        str, doc("From now on nothing older counts: the next model holds none of the user's ratings before it")
    ]


class Liked(Movie):
    rating: Annotated[float | None, doc("The user's rating; null for a like sent as an event without one")]
    rated_at: Annotated[str, doc("ISO date")]
    source: Annotated[
        Literal["model", "event"],
        doc("model: in the ratings the model was trained on; event: sent since (POST /events), served already"),
    ]


class History(TypedDict):
    model_version: str
    user_id: int
    total: int
    offset: int
    k: int
    realtime: RealTime
    items: list[Liked]


class UserSummary(TypedDict):
    user_id: int
    likes: int
    top_genres: list[str]


class Users(TypedDict):
    model_version: str
    seed: int
    items: list[UserSummary]


class SimilarMovie(Movie):
    similarity: float


class PopularMovie(Movie):
    likes: int


class Similar(TypedDict):
    model_version: str
    movie: Annotated[PopularMovie, doc("The movie asked about, with how many users liked it in training")]
    basis: Annotated[
        Literal["model", "genres"],
        doc(
            "model: nearest LightFM item vectors (cosine). genres: nobody liked this movie in training, so its "
            "vector carries no signal; the neighbours are liked movies sharing most of its genres (Jaccard)"
        ),
    ]
    items: Annotated[list[SimilarMovie], doc("Never a movie that nobody liked in training")]


class Movies(TypedDict):
    model_version: str
    query: str
    match: Literal["exact", "closest"]  # closest: no title has the query's words; these are nearest, for a typo
    items: list[PopularMovie]


class ModelInfo(TypedDict):
    model_version: str
    created_at: str | None
    users: int
    movies: int
    genres: list[str]
    data: dict[str, object]
    params: dict[str, object]
    metrics: dict[str, object]
    libraries: dict[str, str]


class ErrorDetail(TypedDict):
    code: str
    message: str
    request_id: NotRequired[Annotated[str, doc("On a 5xx: quote it to find the cause in the logs")]]


class ErrorBody(TypedDict):
    error: ErrorDetail
