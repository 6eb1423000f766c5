"""One run at a time per group: an exclusive `flock` on the group's file in `tmp/locks/`.

The kernel drops the lock when its holder dies, however it dies (kill -9 included),
so "the lock is free" is also how the sensor tells a group whose run vanished from
one whose run is still converting it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from contimg import naming
from contimg.layout import StorageLayout


class GroupBusyError(RuntimeError):
    """Another process holds this group's lock (a second run of the same group)."""


def lock_path(layout: StorageLayout, group_id: str) -> Path:
    """`tmp/locks/YYYY-MM-DD/<YYYY-MM-DD_HH_MM_SS>.lock`: date directories keep a year of
    groups out of one listing."""
    return layout.tmp_dir / "locks" / naming.date_dir(group_id) / f"{naming.group_id(group_id)}.lock"


@contextmanager
def group_lock(layout: StorageLayout, group_id: str) -> Iterator[None]:
    """Hold the group's lock for the block; raise GroupBusyError at once if it is taken."""
    path = lock_path(layout, group_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 200, 0).decode(errors="replace").strip() or "unknown"
            raise GroupBusyError(
                f"group {group_id} is being converted by another run ({holder}); this run "
                "changed nothing. Fix: wait for that run to finish.") from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
        yield
    finally:
        os.close(handle)  # closing drops the lock


def is_locked(layout: StorageLayout, group_id: str) -> bool:
    """True while some live process holds the group's lock."""
    path = lock_path(layout, group_id)
    if not path.exists():
        return False
    handle = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)
    return False


LOCK_WAIT_S = 900.0  # a bandpass solve on a full group holds the calibrator's lock ~90 s


@contextmanager
def waiting_group_lock(layout: StorageLayout, group_id: str, wait_s: float = LOCK_WAIT_S,
                        poll_s: float = 1.0) -> Iterator[None]:
    """The group's lock, waiting while another stage (a solve, a conversion) holds it."""
    deadline = time.monotonic() + wait_s
    while True:
        stack = ExitStack()
        try:
            stack.enter_context(group_lock(layout, group_id))
        except GroupBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(poll_s)
            continue
        with stack:
            yield
        return
