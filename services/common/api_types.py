"""Types the read APIs' response models share, so `/openapi.json` documents every body while
the JSON stays what clients have always read.

The APIs answered with FastAPI's `jsonable_encoder` before they had models: datetimes as
`isoformat()` ("+00:00", not pydantic's "Z") and, where no model said otherwise, `Decimal` as a
JSON number (an int when it has no fraction). `IsoDateTime` and `JsonNumber` keep those forms
under a model; `Decimal` fields (budget's rates, strings such as "10.3") keep pydantic's default.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, PlainSerializer, WithJsonSchema


def _isoformat(value: datetime) -> str:
    return value.isoformat()


def _number(value: Decimal) -> int | float:
    # FastAPI's `decimal_encoder`: whole values as int, others as float.
    exponent = value.as_tuple().exponent
    return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)


IsoDateTime = Annotated[
    datetime,
    PlainSerializer(_isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
JsonNumber = Annotated[
    Decimal,
    PlainSerializer(_number, return_type=float, when_used="json"),
    WithJsonSchema({"type": "number"}),
]


class Error(BaseModel):
    """How FastAPI answers a refusal (`HTTPException`): 401, 403, 404, 422 from a route's own
    checks, 429."""

    detail: str


def errors(*codes: int, description: str | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the error answers of a route, each with the `Error` model."""
    return {code: {"model": Error, **({"description": description} if description else {})} for code in codes}


#: A route that also answers CSV (`?format=csv` or `Accept: text/csv`): the alternative body.
CSV_ALTERNATIVE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string", "description": "UTF-8 CSV with a BOM"}}},
          "description": "JSON, or CSV with `?format=csv` or `Accept: text/csv`"},
}

#: Every route that needs a credential: no or a bad one (401), another role (403), too many tries (429).
ACCESS_ERRORS = errors(401, 403, 429)
