"""Dependencies every service's API shares: its runtime and a read session, from the app's state.

Routes that read are plain `def`s: FastAPI runs them, and the session's opening and closing, in
its thread pool, so a query never blocks the event loop."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from services.common.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def read_session(rt: RuntimeDep) -> Iterator[Session]:
    with rt.db.read() as session:
        yield session


# scope="function": the connection goes back to the pool when the route returns, not after the
# response is sent.
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
