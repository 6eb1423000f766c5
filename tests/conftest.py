"""Shared fixtures: an isolated layout per test and simulated groups made once per session."""

from __future__ import annotations

import json
import os
import threading
import warnings
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from contimg.simulation.telescope import SimulatedGroup, SimulationRequest, simulate

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


@pytest.fixture
def layout_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every CONTIMG_* location into a fresh temporary home; return that home."""
    for key in list(os.environ):
        if key.startswith("CONTIMG_"):
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("CONTIMG_HOME", str(home))
    monkeypatch.setenv("CONTIMG_TMPFS_DIR", str(tmp_path / "shm"))
    return home


@pytest.fixture(scope="session")
def tiny_groups(tmp_path_factory: pytest.TempPathFactory) -> list[SimulatedGroup]:
    """Two consecutive tiny groups with a calibrator (made once, read by many tests)."""
    out = tmp_path_factory.mktemp("tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate(SimulationRequest(out_dir=out, size="tiny", n_groups=2,
                                          calibrator="0834+555", seed=11))


class _Capture(BaseHTTPRequestHandler):
    """A Slack-compatible webhook stand-in: records every JSON payload POSTed to it."""

    payloads: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        _Capture.payloads.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    """A real HTTP server on loopback; yields (url, list of received payloads)."""
    _Capture.payloads = []
    server = HTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Capture.payloads
    server.shutdown()
