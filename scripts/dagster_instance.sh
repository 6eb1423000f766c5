#!/usr/bin/env bash
# Write (or upgrade) the Dagster instance configuration DAGSTER_HOME/dagster.yaml of the
# embedded default. Called by run.sh on every start; usage: dagster_instance.sh DAGSTER_HOME
#
# A new file gets the whole embedded default. An existing file (a previous run's, or the
# operator's own) is kept as it is, and only gains the `python_logs`, `run_launcher` (with
# run monitoring and retries) and `freshness` blocks when it has none:
# runs then log at INFO, so the terminal shows run starts, materialisations, checks and
# failures, but not Dagster's DEBUG events (those stay in the UI's event log).
set -euo pipefail
home="${1:?usage: dagster_instance.sh DAGSTER_HOME}"
yaml="$home/dagster.yaml"
mkdir -p "$home"
[ -f "$yaml" ] || cat >"$yaml" <<YAML
# Embedded default: SQLite instance storage under DAGSTER_HOME.
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 4
    # Runs of one partition (one observation group) wait for each other instead of
    # racing; the group lock refuses the second one anyway, this just queues it.
    tag_concurrency_limits:
      - key: "dagster/partition"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: 1  # e.g. the "conversion" pool: one MS written at a time on 2 cores
YAML
if ! grep -q '^python_logs:' "$yaml"; then
  cat >>"$yaml" <<YAML
# Added by scripts/dagster_instance.sh: runs print INFO and above to the terminal
# (DEBUG events are still recorded in the event log the UI shows).
python_logs:
  python_log_level: INFO
YAML
fi
if ! grep -q '^run_launcher:' "$yaml"; then
  cat >>"$yaml" <<YAML
# Added by scripts/dagster_instance.sh: Dagster's default launcher with a health check of
# each run's worker process (resources/run_launcher.py), so that run monitoring fails a
# run whose worker was killed (kill -9, OOM, a restart) instead of leaving it STARTED and
# holding its slot; run retries then redo the group-level jobs (solves, mosaics,
# variability; only when the worker died, never after a step failed), and the sensors
# redo the per-group jobs, whose runs are tagged dagster/max_retries=0.
run_launcher:
  module: resources.run_launcher
  class: LocalRunLauncher
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 20
  # A killed worker never gives back the pool slot its step held (e.g. "conversion"):
  # slots of runs that ended this long ago are freed, or every later step would wait.
  free_slots_after_run_end_seconds: 30
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
YAML
fi
if ! grep -q '^freshness:' "$yaml"; then
  cat >>"$yaml" <<YAML
# Added by scripts/dagster_instance.sh: evaluate the assets' freshness policies (the image
# stream declares one: an image at least every three group cadences).
freshness:
  enabled: true
YAML
fi
