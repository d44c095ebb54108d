"""What the budget API's routes depend on, from the app's state (set in `app.build`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.budget.service import Config
from services.common.deps import ReadSession, RuntimeDep

__all__ = ["ConfigDep", "ReadSession", "RuntimeDep"]


def config(request: Request) -> Config:
    cfg: Config = request.app.state.budget_config
    return cfg


ConfigDep = Annotated[Config, Depends(config)]
