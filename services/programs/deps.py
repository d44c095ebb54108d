"""What the programs API's routes depend on, from the app's state (set in `app.build`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.common.deps import ReadSession, RuntimeDep
from services.programs.service import Clock, Config

__all__ = ["ClockDep", "ConfigDep", "ReadSession", "RuntimeDep"]


def config(request: Request) -> Config:
    cfg: Config = request.app.state.programs_config
    return cfg


def clock(request: Request) -> Clock:
    """The service's clock (settings or tests set "today")."""
    today: Clock = request.app.state.clock
    return today


ConfigDep = Annotated[Config, Depends(config)]
ClockDep = Annotated[Clock, Depends(clock)]
