"""Keeping credentials out of what the platform writes down (databases, backups, logs).

`CONTIMG_RCLONE_REMOTE` may carry credentials: rclone's connection strings take
backend parameters inline (`:s3,access_key_id=AKIA...,secret_access_key=...:bucket`,
`archive,pass=...:dir`), and a URL may carry a user and password
(`sftp://user:pass@host/dir`). `redact_remote` replaces every such value by `***` and
keeps the rest (backend, host, path), so a recorded location still says where a copy
went without saying how to get in. The webhook URL is shown with `settings.mask`.
"""

from __future__ import annotations

import re

REDACTED = "***"

# `,name=value` inside a connection string; rclone requires a value holding `,` or `:`
# to be quoted ("..." or '...', a quote doubled inside), so unquoted values stop there.
_PARAMETER = re.compile(
    r"""(?P<name>,\s*[A-Za-z0-9_-]+\s*=\s*)(?P<value>"(?:[^"]|"")*"|'(?:[^']|'')*'|[^,:\s"']*)""")
# `scheme://user:password@` in a URL.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*):(?P<password>[^@/\s]*)@")


def redact_remote(text: str) -> str:
    """`text` (a remote, a path on it, or a message naming one) with credentials masked.

    >>> redact_remote(":s3,access_key_id=AK,secret_access_key=SK:bucket/archive")
    ':s3,access_key_id=***,secret_access_key=***:bucket/archive'
    >>> redact_remote("sftp://ops:hunter2@archive.example/dsa110")
    'sftp://ops:***@archive.example/dsa110'
    """
    if not text:
        return text
    # Every parameter value is masked, not only the known secret names: backends name
    # their secrets differently (pass, key, token, sas_url, ...), and a redacted
    # non-secret costs nothing.
    redacted = _PARAMETER.sub(lambda m: m.group("name") + REDACTED, text)
    return _USERINFO.sub(lambda m: f"{m.group('head')}:{REDACTED}@", redacted)


