"""Alerts to a Slack-compatible webhook: logged always, posted when a URL is set.

Posting happens on a background thread with short timeouts and a few retries, so
an unreachable webhook never fails or stalls the run that raised the alert.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from contimg.alerts import emit_alert
from contimg.state import StateStore
from contimg.state.connection import utc_now, write_transaction

log = logging.getLogger("contimg.notifier")


@dataclass
class Notifier:
    """Sends alerts; `webhook_url` None means log-only."""

    logs_dir: Path
    webhook_url: str | None = None
    retries: int = 3
    timeout_s: float = 3.0

    def notify(self, kind: str, message: str, **details: object) -> threading.Thread | None:
        """Log the alert and post it in the background; return the sending thread."""
        alert = emit_alert(self.logs_dir, kind, message, **details)
        if not self.webhook_url:
            return None
        payload = {"text": f"[contimg] {kind}: {message}", "contimg": alert}
        thread = threading.Thread(target=self._post, args=(payload,), name=f"alert-{kind}")
        thread.start()
        return thread

    def _post(self, payload: dict) -> None:
        body = json.dumps(payload, default=str).encode()
        for attempt in range(1, self.retries + 1):
            request = urllib.request.Request(self.webhook_url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                    if 200 <= reply.status < 300:
                        return
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                log.warning("alert webhook attempt %d/%d failed: %s", attempt, self.retries, exc)
            time.sleep(0.5 * attempt)
        log.error("alert not delivered after %d attempts: %s", self.retries, payload["text"])


def level_changed(store: StateStore, key: str, level: str) -> str | None:
    """Record the level of a watched quantity; return the previous level if it changed.

    Alerts fire on crossings, not on every observation: the first observation of a
    key at OK is silent, any later change reports the level it left.
    """
    conn = store.connection("products")
    with write_transaction(conn):
        row = conn.execute("SELECT level FROM alert_state WHERE alert_key = ?", (key,)).fetchone()
        previous = row[0] if row else "OK"
        if row is not None and previous == level:
            return None
        conn.execute("INSERT INTO alert_state (alert_key, level, changed_at) VALUES (?, ?, ?)"
                     " ON CONFLICT(alert_key) DO UPDATE SET level = excluded.level,"
                     " changed_at = excluded.changed_at", (key, level, utc_now()))
    return previous if previous != level else None
