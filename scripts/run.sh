#!/usr/bin/env bash
# Set up (idempotent) and run the platform on the embedded default: every directory
# under ./var, Dagster's instance storage in SQLite under var/dagster, the web UI on
# http://127.0.0.1:3000, sensors and schedules on, the simulated telescope feeding
# incoming/ (CONTIMG_DEMO=1; cadence CONTIMG_DEMO_CADENCE_S, default 60 s), and
# Prometheus metrics on http://127.0.0.1:9108/metrics.
#
# The terminal shows what an operator needs: runs at INFO (python_logs in dagster.yaml),
# and only warnings and errors of Dagster's own services (webserver, daemon: their
# INFO lines are one "checking for new runs" per sensor tick).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh
export CONTIMG_HOME="${CONTIMG_HOME:-$repo/var}"
export DAGSTER_HOME="${DAGSTER_HOME:-$CONTIMG_HOME/dagster}"
export CONTIMG_DEMO="${CONTIMG_DEMO:-1}"
# Written when absent, upgraded when a previous run's file lacks the log level.
bash scripts/dagster_instance.sh "$DAGSTER_HOME"
.venv/bin/contimg doctor
ui_port="${CONTIMG_UI_PORT:-3000}"
metrics_port="${CONTIMG_METRICS_PORT:-9108}"
# Prometheus metrics on loopback (contimg_stage_disk_free_gb, ...), stopped with the UI.
.venv/bin/contimg metrics serve --port "$metrics_port" &
metrics_pid=$!
trap 'kill "$metrics_pid" 2>/dev/null || true' EXIT
# Said here because the services' own start-up lines are INFO, below the level shown.
echo "contimg: UI on http://127.0.0.1:$ui_port, metrics on http://127.0.0.1:$metrics_port/metrics (Ctrl-C stops)"
# `dagster dev` announces at each start that it is superseded by `dg dev` (dagster-dg,
# not installed); that FutureWarning, raised from click.core, is the only one filtered.
PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore::FutureWarning:click.core" \
    .venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p "$ui_port" \
    --log-level warning --code-server-log-level warning
