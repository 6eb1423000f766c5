"""The image stream's freshness: declared with Dagster's own policy, and one alert when
groups keep arriving but no image has been made for three cadences (one when it flows
again)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from dagster import build_sensor_context

from contimg.imaging.stream import image_stream_state
from contimg.state import StateStore
from contimg_assets.imaging import image
from sensors.image_stream import image_stream_sensor

NOW = datetime(2025, 10, 13, 16, 0, 0, tzinfo=UTC)


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _converted(store: StateStore, group: str, created: datetime) -> None:
    store.execute("products", "INSERT INTO ms_index (path, group_id, kind, start_mjd, end_mjd, status,"
                  " created, updated) VALUES (?, ?, 'science', 60961.6, 60961.604, 'converted', ?, ?)",
                  (f"/ms/{group}.ms", group, _at(created), _at(created)))


def _imaged(store: StateStore, group: str, created: datetime) -> None:
    store.execute("products", "INSERT INTO images (path, group_id, kind, mid_mjd, status, created)"
                  " VALUES (?, ?, 'image-pb', 60961.6, 'ready', ?)",
                  (f"/images/{group}.img-image-pb.fits", group, _at(created)))


def _alerts(layout, kind: str) -> list[dict]:
    path = layout.logs_dir / "alerts.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [a for a in map(json.loads, lines) if a.get("kind") == kind]


def test_the_image_asset_declares_its_freshness():
    policy = image.specs_by_key[image.key].freshness_policy
    # Three cadences in whole seconds (the UI's GraphQL Int): 927.71 s -> 928 s.
    assert policy is not None and policy.fail_window.to_timedelta() == timedelta(seconds=928)


def test_the_stream_stalls_only_when_groups_keep_arriving(platform):
    layout, _, _ = platform
    store = StateStore(layout.state_dir)
    assert image_stream_state(store, NOW).level == "OK"  # nothing converted yet
    _converted(store, "2025-10-13T15:00:00", NOW - timedelta(minutes=60))
    _imaged(store, "2025-10-13T15:00:00", NOW - timedelta(minutes=59))
    assert image_stream_state(store, NOW).level == "OK", "a quiet telescope is not a stall"
    _converted(store, "2025-10-13T15:40:00", NOW - timedelta(minutes=16))
    assert image_stream_state(store, NOW - timedelta(minutes=50)).level == "OK"
    stalled = image_stream_state(store, NOW)
    assert stalled.level == "STALLED" and "no image for 59 min" in stalled.message


def test_one_alert_when_it_stalls_and_one_when_it_flows_again(platform):
    layout, resources, instance = platform
    store = StateStore(layout.state_dir)
    old = datetime.now(UTC) - timedelta(hours=2)
    _converted(store, "2025-10-13T15:00:00", old)
    _imaged(store, "2025-10-13T15:00:00", old)
    _converted(store, "2025-10-13T15:40:00", datetime.now(UTC))

    def tick() -> None:
        with build_sensor_context(instance=instance, resources=resources) as context:
            image_stream_sensor(context)

    tick()
    tick()
    assert len(_alerts(layout, "image_stream_stalled")) == 1
    _imaged(store, "2025-10-13T15:40:00", datetime.now(UTC))
    tick()
    assert len(_alerts(layout, "image_stream_restored")) == 1
    assert len(_alerts(layout, "image_stream_stalled")) == 1
