#!/usr/bin/env bash
# Set up (idempotent) and run the platform on the embedded default: every directory
# under ./var, Dagster's instance storage in SQLite under var/dagster, the web UI on
# http://127.0.0.1:3000, sensors and schedules on, the simulated telescope feeding
# incoming/ (CONTIMG_DEMO=1; cadence CONTIMG_DEMO_CADENCE_S, default 60 s), and
# Prometheus metrics on http://127.0.0.1:9108/metrics.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh
export CONTIMG_HOME="${CONTIMG_HOME:-$repo/var}"
export DAGSTER_HOME="${DAGSTER_HOME:-$CONTIMG_HOME/dagster}"
export CONTIMG_DEMO="${CONTIMG_DEMO:-1}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cat >"$DAGSTER_HOME/dagster.yaml" <<YAML
# Embedded default: SQLite instance storage under DAGSTER_HOME.
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    default_limit: 1  # e.g. the "conversion" pool: one MS written at a time on 2 cores
YAML
.venv/bin/contimg doctor
# Prometheus metrics on loopback (contimg_stage_disk_free_gb, ...), stopped with the UI.
.venv/bin/contimg metrics serve --port "${CONTIMG_METRICS_PORT:-9108}" &
metrics_pid=$!
trap 'kill "$metrics_pid" 2>/dev/null || true' EXIT
.venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p "${CONTIMG_UI_PORT:-3000}"
