"""What notify's API routes depend on, from the app's state (set in `app.build`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.common.deps import ReadSession, RuntimeDep
from services.notify.render import Renderer
from services.notify.service import Notifier

__all__ = ["NotifierDep", "ReadSession", "RendererDep", "RuntimeDep"]


def notifier(request: Request) -> Notifier:
    n: Notifier = request.app.state.notifier
    return n


def renderer(request: Request) -> Renderer:
    """The pages' templates (the acknowledge link's confirmation page)."""
    r: Renderer = request.app.state.renderer
    return r


NotifierDep = Annotated[Notifier, Depends(notifier)]
RendererDep = Annotated[Renderer, Depends(renderer)]
