"""Alert on every failed run (once per run), with the reason and the group.

Dagster's run-failure event says only "Steps failed: ['uvh5_group']"; the reason is in
the failing step's own event, so the alert is built from the run's event log."""

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    RunFailureSensorContext,
    run_failure_sensor,
)
from dagster_shared.error import SerializableErrorInfo  # the type of a step's recorded error

from contimg_assets.partitions import GROUP_TAG
from resources import NotifierResource

PARTITION_TAG = "dagster/partition"
MAX_REASON_CHARS = 1500  # a Slack message stays readable; the UI has the full trace


def failure_alert(instance: DagsterInstance, run: DagsterRun) -> tuple[str, dict[str, object]]:
    """The alert text and details of a failed run: which group, which step, and why."""
    group = run.tags.get(GROUP_TAG) or run.tags.get(PARTITION_TAG)
    failures = _step_failures(instance, run.run_id)
    if failures:
        reason = "; ".join(f"{step}: {text}" for step, text in failures)
    else:  # failed outside any step (e.g. the run worker died): the run event has it
        reason = _run_failure_message(instance, run.run_id) or "unknown error"
    reason = _clip(reason)
    subject = f"run {run.run_id[:8]} of {run.job_name}"
    where = f" for group {group}" if group else ""
    message = f"{subject} failed{where}: {reason}"
    details = {"run_id": run.run_id, "job": run.job_name, "group": group,
               "partition": run.tags.get(PARTITION_TAG), "steps": [s for s, _ in failures],
               "reason": reason}
    return message, details


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING, monitor_all_code_locations=False)
def run_failure_alert_sensor(context: RunFailureSensorContext, notifier: NotifierResource) -> None:
    """Send the failed run's group, failing step and reason to the notifier."""
    message, details = failure_alert(context.instance, context.dagster_run)
    notifier.notifier().notify("run_failure", message, **details)


def _step_failures(instance: DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step key, reason) of every failed step of the run, in order."""
    failures = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event is None:
            continue
        data = event.step_failure_data
        # A raised dagster.Failure carries the operator-facing description; any other
        # exception is wrapped by Dagster, and its innermost cause is the real reason.
        if data.user_failure_data is not None and data.user_failure_data.description:
            text = data.user_failure_data.description
        elif data.error is not None:
            text = _root_message(data.error)
        else:
            text = event.message or "unknown error"
        if ": " not in text:  # an error without text, e.g. a crashed step process
            text = _engine_error(instance, run_id, event.step_key) or text
        failures.append((event.step_key or "?", text))
    return failures


def _engine_error(instance: DagsterInstance, run_id: str, step_key: str | None) -> str | None:
    """The engine's account of a step's error ("... exited with code 3"), if it gave one."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if (event is not None and event.step_key == step_key and event.message
                and getattr(event.event_specific_data, "error", None) is not None):
            return event.message
    return None


def _root_message(error: SerializableErrorInfo) -> str:
    """'ValueError: text' of the innermost cause of a SerializableErrorInfo."""
    while error.cause is not None:
        error = error.cause
    # Errors relayed from a child process embed their trace; the UI shows it, not the alert.
    text = error.message.split("\n\nStack Trace:")[0].strip()
    # The message starts with the exception's qualified name; keep only the class name.
    qualified, _, rest = text.partition(": ")
    return f"{error.cls_name}: {rest}" if rest and qualified.endswith(error.cls_name) else text


def _run_failure_message(instance: DagsterInstance, run_id: str) -> str | None:
    """The run-failure event's message and error (used when no step recorded a failure,
    e.g. a step process that crashed or raised outside the step's own error handling)."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE):
        event = entry.dagster_event
        if event is None:
            continue
        data = event.job_failure_data if event.is_job_failure else None
        if data is not None and data.error is not None:
            return f"{event.message or 'run failed'} {_root_message(data.error)}".strip()
        if event.message:
            return event.message
    return None


def _clip(text: str) -> str:
    """At most MAX_REASON_CHARS characters, marked when cut."""
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS - 1] + "…"
