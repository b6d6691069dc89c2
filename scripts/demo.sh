#!/usr/bin/env bash
# Install sidetrace into .venv and run the demo: embedded ClickHouse, collector,
# dashboard and a sample system under load.   scripts/demo.sh [demo flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_system_packages gcc python3-dev
setup_venv embedded
exec .venv/bin/sidetrace demo "$@"
