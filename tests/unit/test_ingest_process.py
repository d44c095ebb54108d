"""A service's own process tunes the garbage collector (services/common/runtime.py `tune_gc`,
called by `serve` once the app is built)."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from services.common import runtime
from services.common.settings import Settings


def test_the_service_process_freezes_its_startup_heap_and_collects_young_objects_less_often():
    threshold = gc.get_threshold()
    try:
        runtime.tune_gc()
        assert gc.get_freeze_count() > 10_000  # modules, schemas: out of every collection
        assert gc.get_threshold()[0] == 10_000
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle made after the freeze is still collected
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_serve_tunes_the_collector_after_building_the_app_and_before_running_it(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(runtime, "configure_logging", lambda *a, **k: None)
    monkeypatch.setattr(runtime, "startup_problems", lambda settings: [])
    monkeypatch.setattr(runtime, "tune_gc", lambda: calls.append("tune_gc"))
    monkeypatch.setattr(runtime.uvicorn, "run", lambda app, **kw: calls.append("run"))

    def factory(settings: Settings) -> FastAPI:
        calls.append("build")
        return FastAPI()

    runtime.serve(factory, "budget", Settings())
    assert calls == ["build", "tune_gc", "run"]
