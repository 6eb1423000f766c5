"""Where the steps of the platform's asset jobs execute: `CONTIMG_EXECUTOR`.

`in_process` (the default): a run's steps one after another in the run's own process
(README, "Automation and the calibration assets": a process per step would cost more than
a tiny group's conversion). `celery`: each step is a task on the Redis broker
`CONTIMG_CELERY_BROKER`, executed by the Celery workers of the nodes (README, "Multi-node
layout"); a heavy asset's step goes to the queue named after its pool (conversion,
calibration, imaging), every other step to Dagster's default queue `dagster`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from dagster import ExecutorDefinition, in_process_executor

from contimg.settings import load_settings

# The one configuration the run workers and the nodes' Celery workers share.
CELERY_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "celery" / "celery.yaml"
QUEUE_TAG = "dagster-celery/queue"  # dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG
HEAVY_QUEUES = ("conversion", "calibration", "imaging")


def celery_queue(pool: str) -> dict[str, str]:
    """The op tags that send a heavy asset's step to its pool's Celery queue (ignored by
    the in-process executor)."""
    if pool not in HEAVY_QUEUES:
        raise ValueError(f"{pool!r} is not a heavy pool with a queue: {HEAVY_QUEUES}")
    return {QUEUE_TAG: pool}


def run_executor() -> ExecutorDefinition:
    """The executor of the per-group and calibration, mosaic and variability jobs."""
    settings = load_settings()
    if settings["CONTIMG_EXECUTOR"] != "celery":
        return in_process_executor
    from dagster_celery import celery_executor

    config = yaml.safe_load(CELERY_CONFIG.read_text())["execution"]["config"]
    # The URL from the validated settings (environment or TOML file); the workers read
    # the same variable from their environment file.
    broker = str(settings["CONTIMG_CELERY_BROKER"])
    return celery_executor.configured(config | {"broker": broker, "backend": broker},
                                      name="celery_executor")
