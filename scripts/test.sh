#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite: unit, integration (real CASA,
# WSClean, rclone, dagster-webserver) and science validation. Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q --timeout=1800 "$@"
