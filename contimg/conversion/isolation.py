"""Run the converter in a forked child process, so a crash cannot take the run with it.

casacore aborts the whole process (SIGABRT, exit 134) when a write fails deep inside
a table flush, e.g. when tmpfs fills up mid-conversion: no Python exception is ever
raised. In a child, such a death becomes a `ConverterCrashedError` in the parent,
which records it, removes the workspace and lets the group be retried. Forking
costs milliseconds (the parent's imports are inherited), where a fresh interpreter
would spend seconds importing casacore, numpy and h5py again.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import pickle
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any


class ConverterCrashedError(RuntimeError):
    """The converter process died without an answer (a signal or a hard exit)."""


def run_in_child(function: Callable[..., Any], *args: Any,
                 progress: Callable[[str], None] | None = None, timeout_s: float | None = None,
                 start_method: str = "fork", **kwargs: Any) -> Any:
    """Call `function(*args, **kwargs)` (with `progress=` forwarded from the child when a
    `progress` is given) in a forked child and return its
    result; re-raise its exception; raise ConverterCrashedError if it dies, or if it
    runs longer than `timeout_s` (then it is killed: a hung writer must not hold the
    group's lock forever). `start_method` "spawn" gives a fresh interpreter: needed for
    CASA's tasks, whose threads (logger, services) can deadlock a forked child."""
    context = multiprocessing.get_context(start_method)
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child_main,
                            args=(sender, function, args, kwargs, progress is not None),
                            name="contimg-converter", daemon=True)
    child.start()
    sender.close()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    outcome = _collect(receiver, child, progress, deadline)
    if outcome == "timeout":
        child.kill()
        child.join()
        receiver.close()
        raise ConverterCrashedError(f"the converter ran longer than {timeout_s:.0f} s and was "
                                    "killed (CONTIMG_CONVERT_TIMEOUT_S); a stalled disk is the "
                                    "usual cause")
    child.join()
    receiver.close()
    if outcome is None:
        raise ConverterCrashedError(f"the {getattr(function, '__name__', 'worker')} process died "
                                    f"({describe_exit(child.exitcode)}) before finishing; a full "
                                    "disk is the usual cause")
    kind, value = outcome
    if kind == "error":
        raise value
    return value


def describe_exit(code: int | None) -> str:
    """'killed by SIGABRT' for a negative exit code, else 'exit code N'."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _collect(receiver: Connection, child: Any, progress: Callable[[str], None] | None,
             deadline: float | None) -> tuple[str, Any] | str | None:
    while True:
        if deadline is not None and time.monotonic() > deadline:
            return "timeout"
        try:
            if receiver.poll(0.2):
                kind, value = receiver.recv()
                if kind == "progress":
                    if progress:
                        progress(value)
                    continue
                return kind, value
        except EOFError:
            return None  # the child closed its end without answering: it died
        if not child.is_alive() and not receiver.poll(0):
            return None


def _child_main(sender: Connection, function: Callable[..., Any], args: tuple,
                kwargs: dict, report_progress: bool) -> None:
    # The parent reports a crash in one line; a Python stack dump from the child's
    # inherited fault handler would only bury it.
    faulthandler.disable()
    try:
        if report_progress:
            kwargs = {**kwargs, "progress": lambda text: sender.send(("progress", text))}
        result = function(*args, **kwargs)
        sender.send(("ok", result))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        sender.send(("error", _picklable(exc)))
    finally:
        sender.close()


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - some library exceptions cannot be pickled
        return RuntimeError(f"{type(exc).__name__}: {exc}")
