"""Other execwatch commands find a running `execwatch up` from the file it writes, unless the
environment says where the broker or database is; a file left by a process that is gone is ignored."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from services.local import RUNTIME_FILE, apply_discovery


def _write(workdir: Path, pid: int) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / RUNTIME_FILE).write_text(json.dumps({"pid": pid, "env": {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:40001", "DATABASE_URL": "sqlite:////srv/x/execwatch.db",
        "EXECWATCH_BUDGET_PORT": "40102"}}))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no .env, no var/ of the checkout
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))


def test_a_running_up_fills_in_what_is_not_set(tmp_path: Path) -> None:
    _write(tmp_path / "var", os.getpid())
    env: dict[str, str] = {"EXECWATCH_BUDGET_PORT": "9999"}
    assert apply_discovery(env) is not None
    assert env == {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:40001", "DATABASE_URL": "sqlite:////srv/x/execwatch.db",
                   "EXECWATCH_BUDGET_PORT": "9999"}


def test_a_configured_environment_wins_whole(tmp_path: Path) -> None:
    _write(tmp_path / "var", os.getpid())
    env = {"DATABASE_URL": "postgresql://db/execwatch"}
    assert apply_discovery(env) is None
    assert env == {"DATABASE_URL": "postgresql://db/execwatch"}  # never the file's broker with this database


def test_a_file_from_a_process_that_is_gone_is_ignored(tmp_path: Path) -> None:
    _write(tmp_path / "var", 2**22 + 12345)  # above pid_max: no such process
    (tmp_path / "run").mkdir()
    env: dict[str, str] = {}
    assert apply_discovery(env) is None and env == {}
