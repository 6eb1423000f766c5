"""An alert when the image stream stalls (and one when it flows again)."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SkipReason, sensor

from contimg.imaging.stream import image_stream_state
from contimg.ops.notifier import level_changed
from resources import NotifierResource, StateDatabasesResource


@sensor(name="image_stream_sensor", minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING)
def image_stream_sensor(context: SensorEvaluationContext, state: StateDatabasesResource,
                        notifier: NotifierResource) -> SkipReason:
    """`image_stream_stalled` once when groups keep arriving but no image has been made for
    three cadences; `image_stream_restored` once when images flow again."""
    with state.open() as store:
        current = image_stream_state(store)
        previous = level_changed(store, "image_stream", current.level)
    if previous is not None:
        kind = "image_stream_stalled" if current.level == "STALLED" else "image_stream_restored"
        notifier.notifier().notify(kind, current.message)
    return SkipReason(f"{current.level}: {current.message}")
