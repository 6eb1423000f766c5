"""The alert notifier as a resource: webhook URL from config or CONTIMG_ALERT_WEBHOOK_URL."""

import os

from dagster import ConfigurableResource

from contimg.ops.notifier import Notifier
from resources.storage_layout import StorageLayoutResource


class NotifierResource(ConfigurableResource):
    """Slack-compatible webhook alerts; log-only (logs/alerts.jsonl) when no URL is set."""

    storage: StorageLayoutResource
    webhook_url: str | None = None

    def notifier(self) -> Notifier:
        """A Notifier writing to the layout's log directory."""
        url = self.webhook_url or os.environ.get("CONTIMG_ALERT_WEBHOOK_URL") or None
        return Notifier(self.storage.layout().logs_dir, url)
