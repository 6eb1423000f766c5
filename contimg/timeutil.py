"""Small time conversions shared by every stage (no astropy import on hot paths)."""

from __future__ import annotations

from datetime import UTC, datetime

_UNIX_EPOCH_MJD = 40587.0


def datetime_to_mjd(moment: datetime) -> float:
    """Modified Julian Date (UTC) of a datetime; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() / 86400.0 + _UNIX_EPOCH_MJD
