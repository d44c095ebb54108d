"""The ingest service's own process tunes the garbage collector (services/ingest/app.py)."""

from __future__ import annotations

import gc

from services.ingest import app


def test_the_service_process_freezes_its_startup_heap_and_collects_young_objects_less_often():
    threshold = gc.get_threshold()
    try:
        app.tune_gc()
        assert gc.get_freeze_count() > 10_000  # modules, schemas: out of every collection
        assert gc.get_threshold()[0] == 10_000
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle made after the freeze is still collected
        del garbage
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_main_builds_the_service_with_the_tuned_collector(monkeypatch):
    served: list[object] = []
    monkeypatch.setattr(app, "serve", lambda factory, name, settings: served.append((factory, name)))
    app.main()
    assert served == [(app.build_frozen, "ingest")]
