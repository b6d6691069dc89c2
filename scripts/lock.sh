#!/usr/bin/env bash
# Regenerate requirements.lock: one tested set of every dependency (base, embedded,
# webhook and test extras) for Linux x86_64 / CPython 3.11, the platform of CI and
# the images, resolved within pyproject.toml's ranges by uv.
#   scripts/lock.sh              keep current pins, add what pyproject.toml added
#   scripts/lock.sh --upgrade    move every pin to the newest release in range
#   scripts/lock.sh --upgrade-package grpcio   move one
# Then run the suite (scripts/test.sh) and commit requirements.lock with the change.
set -euo pipefail
cd "$(dirname "$0")/.."
UV_VERSION='uv>=0.13,<0.14'
tools=.venv-tools
if [ ! -x "$tools/bin/uv" ]; then
    python3 -m venv "$tools"
    "$tools/bin/python" -m pip install -q "$UV_VERSION"
fi
"$tools/bin/uv" pip compile pyproject.toml \
    --extra embedded --extra webhook --extra test \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
    --no-header --annotation-style line --quiet \
    --output-file requirements.lock "$@"
echo "requirements.lock: $(grep -c '==' requirements.lock) pinned packages" >&2
