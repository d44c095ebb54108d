# Sourced by scripts/up and scripts/test: a project venv with everything installed.
# Versions come from requirements-dev.lock (the runtime, dev tools and the `local` extra: the
# embedded broker and SMTP sink that `execwatch up` and the tests start), so every machine and CI
# install the same; the project itself is installed editable on top, without resolving again.
# Idempotent and quiet when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EXECWATCH_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "» creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.execwatch-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || [ "$ROOT/requirements-dev.lock" -nt "$stamp" ]; then
  echo "» installing execwatch and its locked dependencies into $VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r "$ROOT/requirements-dev.lock"
  "$VENV/bin/python" -m pip install --quiet --no-deps -e "$ROOT[dev,local]"
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
