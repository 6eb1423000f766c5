"""A real dagster-webserver and Debian's Chromium driven by Playwright, timed.

Shared by `contimg bench partitions` and tests/test_browser_ui.py. Playwright's own
browser download cannot work here (no network), so it drives /usr/bin/chromium.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
CHROMIUM = "/usr/bin/chromium"
# No network here: everything that would phone out is off, so nothing waits on it.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCATION_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries {
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_instance_yaml(dagster_home: Path) -> None:
    """The embedded default instance (SQLite under DAGSTER_HOME), telemetry off: the
    machine is offline and the measurements must not include a phone-home attempt."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")


@contextmanager
def webserver(dagster_home: Path, env: dict[str, str], log: Path,
              timeout_s: float = 240.0) -> Iterator[str]:
    """Serve workspace.yaml with `dagster-webserver` on a free loopback port; yield its base
    URL once the code location has loaded (a load error fails with its message)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(VENV_BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
             "-p", str(port)], cwd=REPO, env={**env, "DAGSTER_HOME": str(dagster_home)},
            stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_location(url, server, timeout_s, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _wait_for_location(url: str, server: subprocess.Popen, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited ({server.returncode}): "
                               f"{log.read_text()[-3000:]}")
        try:
            reply = requests.post(f"{url}/graphql", json={"query": LOCATION_QUERY}, timeout=10)
            entry = reply.json()["data"]["workspaceOrError"]["locationEntries"][0]
            location = entry["locationOrLoadError"]
            if location and location["__typename"] == "RepositoryLocation":
                return
            if location:
                raise RuntimeError(f"code location failed to load: {location}")
        except (requests.RequestException, ValueError, KeyError, IndexError, TypeError):
            pass
        time.sleep(1)
    raise TimeoutError(f"dagster-webserver did not serve the code location in {timeout_s} s: "
                       f"{log.read_text()[-3000:]}")


@contextmanager
def chromium() -> Iterator:
    """A headless Debian Chromium (Playwright sync API); yields the Browser."""
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        raise FileNotFoundError(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def time_until_visible(page, url: str, locator_of, timeout_s: float = 60.0) -> float:
    """Seconds from navigating to `url` until `locator_of(page)` is visible: the time to
    the first meaningful paint of that page, not its load event (the UI is a single-page
    app that fills itself over GraphQL after `load`)."""
    began = time.perf_counter()
    page.goto(url, wait_until="commit")
    locator_of(page).first.wait_for(state="visible", timeout=timeout_s * 1000)
    return time.perf_counter() - began
