"""What a read API accepts in its path, query and small JSON bodies: bounded, so that any request
either is answered or gets a 422 — never a 500 from the database.

Found by fuzzing the OpenAPI of every service: an `offset` or `fiscal_year` beyond 64 bits overflowed
SQLite's INTEGER, a row id beyond 32 bits PostgreSQL's, and a NUL in any text reached PostgreSQL,
which refuses it in text columns: all escaped as 500s. Ids and names never hold control characters,
so a request whose path or query does is refused before routing, for every service at once.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Path, Query
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: Deeper than any list the services hold; larger offsets mean nothing and would overflow 64 bits.
MAX_OFFSET = 1_000_000
#: Integer primary keys are INTEGER columns: 32 bits on PostgreSQL (64 on SQLite).
MAX_ROW_ID = 2**31 - 1

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
FiscalYear = Annotated[int | None, Query(ge=2000, le=2100, description="회계연도")]
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
#: Free text from a JSON body (a comment): any line breaks, but no NUL, which PostgreSQL cannot store.
NO_NUL = r"^[^\x00]*$"

_CONTROL = frozenset(chr(c) for c in [*range(0x20), 0x7F])


def _controlled(text: str) -> bool:
    return any(ch in _CONTROL for ch in text)


def _refusal(loc: list[str], value: str) -> JSONResponse:
    # The shape FastAPI gives every other 422, so a client reads one kind of validation error.
    return JSONResponse(status_code=422, content={"detail": [{
        "type": "value_error", "loc": loc, "msg": "control characters are not allowed here", "input": value}]})


class RefuseControlCharacters:
    """ASGI middleware: a path or query parameter with a control character (NUL, CR, LF, …) is a 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.check(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def check(scope: Scope) -> JSONResponse | None:
        path: str = scope.get("path", "")
        if _controlled(path):
            return _refusal(["path"], path)
        query = scope.get("query_string", b"").decode("latin-1")
        for name, value in parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace"):
            if _controlled(name) or _controlled(value):
                return _refusal(["query", name], value)
        return None
