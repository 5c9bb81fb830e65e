#!/usr/bin/env bash
# Sets up the project's virtualenv (.venv) from the hashed lock file, idempotently.
# Needs only a Python 3.11 with pip; uv (pinned) is installed into .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${QZ_PYTHON:-$(command -v python3.11 || command -v python3)}
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'

UV_VERSION=0.13.9
if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "bootstrap: installing uv $UV_VERSION into .tools/" >&2
  "$PY" -m pip install --quiet --disable-pip-version-check --target .tools "uv==$UV_VERSION"
fi
UV=.tools/bin/uv
export PYTHONPATH="$PWD/.tools${PYTHONPATH:+:$PYTHONPATH}"

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$UV" venv --quiet --python "$PY" .venv
fi
stamp=.venv/.lock-sha256
want=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing pinned dependencies (requirements.lock, hashes checked)" >&2
  "$UV" pip sync --quiet --require-hashes --python .venv/bin/python requirements.lock
  "$UV" pip install --quiet --no-deps --python .venv/bin/python -e .
  echo "$want" > "$stamp"
fi
