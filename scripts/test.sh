#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run the whole suite.
#   scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_system_packages gcc clang libclang-rt-dev python3-dev clickhouse-server wrk nginx-light chromium chromium-driver iptables iproute2 zookeeper prometheus prometheus-alertmanager
setup_venv test
mkdir -p artifacts
exec .venv/bin/python -m pytest -p no:cacheprovider -ra "$@"
