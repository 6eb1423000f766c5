"""Alert on every failed run (once per run)."""

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from resources import NotifierResource


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING, monitor_all_code_locations=False)
def run_failure_alert_sensor(context: RunFailureSensorContext, notifier: NotifierResource) -> None:
    """Send the failed run's job, partition and error to the notifier."""
    run = context.dagster_run
    error = context.failure_event.message if context.failure_event else "unknown error"
    notifier.notifier().notify(
        "run_failure", f"run {run.run_id[:8]} of {run.job_name} failed: {error}",
        run_id=run.run_id, job=run.job_name, partition=run.tags.get("dagster/partition"))
