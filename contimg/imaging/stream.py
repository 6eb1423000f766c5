"""Is the image stream flowing? Groups keep being converted but no image has been made
for three group cadences: the failure an operator most needs to hear about (an imager
that hangs or fails on every group, a calibration gap, a full disk)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from contimg.instrument import GROUP_DURATION_S
from contimg.state import StateStore, products_db

STALL_CADENCES = 3


@dataclass(frozen=True)
class StreamState:
    """STALLED or OK, and why."""

    level: str
    message: str


def image_stream_state(store: StateStore, now: datetime | None = None,
                       cadences: int = STALL_CADENCES) -> StreamState:
    """STALLED when a group was converted after the newest image (or there is no image)
    and that image is older than `cadences` group durations; else OK."""
    now = now or datetime.now(UTC)
    newest_ms, newest_image = (_parse(t) for t in products_db.newest_created(store))
    limit_s = cadences * GROUP_DURATION_S
    if newest_ms is None:
        return StreamState("OK", "no group converted yet")
    since_image = (now - newest_image).total_seconds() if newest_image else None
    arriving = newest_image is None or newest_ms > newest_image
    waited = since_image if since_image is not None else (now - newest_ms).total_seconds()
    if arriving and waited > limit_s:
        last = newest_image.strftime("%Y-%m-%d %H:%M:%S") if newest_image else "never"
        return StreamState("STALLED", f"no image for {waited / 60:.0f} min (last image {last} UTC) "
                                      f"while groups keep arriving (last converted "
                                      f"{newest_ms:%Y-%m-%d %H:%M:%S} UTC); see the image runs' "
                                      "failures in the UI")
    return StreamState("OK", "images keep up with the groups")


def _parse(text: str | None) -> datetime | None:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC) if text else None
