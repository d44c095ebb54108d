"""Types the read APIs' response models share, so `/openapi.json` documents every body while
the JSON stays what clients have always read.

Routes that answered without a response model were encoded by FastAPI's `jsonable_encoder`:
datetimes as `isoformat()` ("+00:00", where pydantic writes "Z"). `IsoDateTime` keeps that form
under a model, for those routes' bodies only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, PlainSerializer, WithJsonSchema


def _isoformat(value: datetime) -> str:
    return value.isoformat()


IsoDateTime = Annotated[
    datetime,
    PlainSerializer(_isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Error(BaseModel):
    """How FastAPI answers a refusal (`HTTPException`): 401, 403, 404, 422 from a route's own
    checks, 429."""

    detail: str


class Invalid(BaseModel):
    """422: FastAPI's validation errors (a list, one per parameter) or a route's own check (a sentence)."""

    detail: str | list[dict[str, Any]]


def errors(*codes: int, description: str | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the error answers of a route: `Error`, or `Invalid` for 422."""
    return {code: {"model": Invalid if code == 422 else Error, **({"description": description} if description else {})}
            for code in codes}


#: A route that also answers CSV (`?format=csv` or `Accept: text/csv`): the alternative body.
CSV_ALTERNATIVE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string", "description": "UTF-8 CSV with a BOM"}}},
          "description": "JSON, or CSV with `?format=csv` or `Accept: text/csv`"},
}

#: Every route that needs a credential: no or a bad one (401), another role (403), too many tries (429).
ACCESS_ERRORS = errors(401, 403, 429)
