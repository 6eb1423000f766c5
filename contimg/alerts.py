"""The alert hook: every alert is logged and appended to logs/alerts.jsonl.

Operations (the notifier issue) forwards these to a Slack-compatible webhook; until
then an operator reads them in the log file and in Dagster's event logs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from contimg.state.connection import utc_now

log = logging.getLogger("contimg.alerts")


def emit_alert(logs_dir: Path, kind: str, message: str, **details: object) -> dict:
    """Record one alert (kind e.g. "incomplete_group") and return it as a dict."""
    alert = {"time": utc_now(), "kind": kind, "message": message, **details}
    log.warning("ALERT %s: %s", kind, message)
    logs_dir.mkdir(parents=True, exist_ok=True)
    with open(logs_dir / "alerts.jsonl", "a") as handle:
        handle.write(json.dumps(alert, default=str) + "\n")
    return alert
