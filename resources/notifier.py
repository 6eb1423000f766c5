"""The alert notifier as a resource: webhook URL from config or CONTIMG_ALERT_WEBHOOK_URL.

The URL comes through the validated settings (`load_settings()`, also called when the
code location loads), so a malformed CONTIMG_ALERT_WEBHOOK_URL stops the platform at
start-up with the variable named and the token masked.
"""

from dagster import ConfigurableResource

from contimg.ops.notifier import Notifier
from contimg.settings import load_settings
from resources.storage_layout import StorageLayoutResource


class NotifierResource(ConfigurableResource):
    """Slack-compatible webhook alerts; log-only (logs/alerts.jsonl) when no URL is set."""

    storage: StorageLayoutResource
    webhook_url: str | None = None

    def notifier(self) -> Notifier:
        """A Notifier writing to the layout's log directory.

        An explicitly configured URL that is malformed is not raised here (that would
        lose the alert being sent): the Notifier keeps the alert in alerts.jsonl and logs
        the misconfiguration with the URL masked.
        """
        url = self.webhook_url or str(load_settings()["CONTIMG_ALERT_WEBHOOK_URL"]) or None
        return Notifier(self.storage.layout().logs_dir, url)
