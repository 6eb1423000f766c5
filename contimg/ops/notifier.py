"""Alerts to a Slack-compatible webhook: logged always, posted when a URL is set.

Posting happens on a background thread with short timeouts and a few retries, so
an unreachable webhook never fails or stalls the run that raised the alert. The URL
carries its token in the path: it is never logged (only `mask(url)`), and a malformed
URL never raises out of `notify` — the alert stays in logs/alerts.jsonl and the log
says the webhook is misconfigured.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from contimg.alerts import emit_alert
from contimg.settings import SettingsError, check_url, mask
from contimg.state import StateStore, products_db

log = logging.getLogger("contimg.notifier")


@dataclass
class Notifier:
    """Sends alerts; `webhook_url` None means log-only."""

    logs_dir: Path
    webhook_url: str | None = None
    retries: int = 3
    timeout_s: float = 3.0

    def notify(self, kind: str, message: str, **details: object) -> threading.Thread | None:
        """Log the alert and post it in the background; return the sending thread.

        Never raises because of the webhook: a bad URL or an unreachable host is logged
        (with the URL masked) and the alert is kept in logs/alerts.jsonl.
        """
        alert = emit_alert(self.logs_dir, kind, message, **details)
        if not self.webhook_url:
            return None
        if not self.url_ok():
            return None
        payload = {"text": f"[contimg] {kind}: {message}", "contimg": alert}
        # Not a daemon: a run process that ends right after an alert still delivers it.
        thread = threading.Thread(target=self._post, args=(payload,), name=f"alert-{kind}")
        thread.start()
        return thread

    def url_ok(self) -> bool:
        """True when the webhook URL is an http(s) URL with a host; logs why not, masked."""
        try:
            check_url(self.webhook_url or "", "CONTIMG_ALERT_WEBHOOK_URL")
        except SettingsError as exc:
            log.error("alert not posted (kept in alerts.jsonl): %s", exc)
            return False
        return True

    def _post(self, payload: dict) -> None:
        url = self.webhook_url or ""
        body = json.dumps(payload, default=str).encode()
        for attempt in range(1, self.retries + 1):
            try:
                request = urllib.request.Request(url, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                    if 200 <= reply.status < 300:
                        return
            except Exception as exc:  # noqa: BLE001 - a background thread must not die loudly
                log.warning("alert webhook %s attempt %d/%d failed: %s", mask(url), attempt,
                            self.retries, _without(url, exc))
            time.sleep(0.5 * attempt)
        log.error("alert not delivered to %s after %d attempts (kept in alerts.jsonl): %s",
                  mask(url), self.retries, payload["text"])


def _without(url: str, exc: BaseException) -> str:
    """An exception's text with the URL (and its path, which holds the token) masked."""
    text = f"{type(exc).__name__}: {exc}"
    path = urllib.parse.urlsplit(url).path
    for secret in (url, path if len(path) > 1 else ""):
        if secret:
            text = text.replace(secret, mask(url))
    return text


def level_changed(store: StateStore, key: str, level: str) -> str | None:
    """Record the level of a watched quantity; return the previous level if it changed.

    Alerts fire on crossings, not on every observation: the first observation of a
    key at OK is silent, any later change reports the level it left.
    """
    stored = products_db.swap_alert_level(store, key, level)
    previous = stored if stored is not None else "OK"
    return previous if previous != level else None
