"""The running platform for the live benchmarks (`arrival`, `day`): a fresh home, Dagster's
instance storage, `dagster-daemon` running the code location as `scripts/run.sh` does
(sensors on, the queued run coordinator, each run in its own process), and the summed
memory of its process tree."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def platform_environment(home: Path, **settings: str) -> dict[str, str]:
    """The process environment of a platform rooted at `home` (no CONTIMG_/DAGSTER_ values
    of the caller leak in); `settings` adds CONTIMG_* values."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTIMG_", "DAGSTER_"))}
    # tmpfs staging of its own per home: two platforms (a benchmark, a test) never share one
    digest = hashlib.sha1(str(home.resolve()).encode()).hexdigest()[:8]
    env |= {"CONTIMG_HOME": str(home), "CONTIMG_TMPFS_DIR": f"/dev/shm/contimg-{home.name}-{digest}",
            "DAGSTER_HOME": str(home / "dagster"), "CONTIMG_DEMO": "0"}
    return env | settings


def create_instance(env: dict[str, str]) -> None:
    """Write the embedded default's dagster.yaml and create its storage once, before the
    daemon and its code server both try to (on a fresh DAGSTER_HOME they raced: "more than
    one head" in alembic_version)."""
    subprocess.run(["bash", str(REPO / "scripts" / "dagster_instance.sh"), env["DAGSTER_HOME"]],
                   env=env, check=True)
    subprocess.run([sys.executable, "-c", "from dagster import DagsterInstance; "
                    "DagsterInstance.get().get_run_records(limit=1)"], env=env, check=True,
                   capture_output=True)


def start_daemon(env: dict[str, str], log: Path) -> subprocess.Popen:
    """`dagster-daemon run` on the workspace, in its own session (stopped as a group)."""
    out = log.open("w")
    return subprocess.Popen([str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w",
                             str(REPO / "workspace.yaml")], env=env, cwd=REPO, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_sensor(env: dict[str, str], name: str = "incoming_files_sensor",
                    timeout_s: float = 180.0) -> None:
    """Until sensor `name` has ticked once (the daemon and its code server are up)."""
    code = ("import sys\nfrom dagster import DagsterInstance\n"
            "i = DagsterInstance.get()\n"
            "print(sum(1 for s in i.all_instigator_state() if s.name == sys.argv[1] "
            "and i.get_ticks(s.instigator_origin_id, s.selector_id, limit=1)))")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = subprocess.run([sys.executable, "-c", code, name], env=env, capture_output=True,
                              text=True)
        if done.stdout.strip() not in ("", "0"):
            return
        time.sleep(2.0)
    raise RuntimeError(f"sensor {name} never ticked; see the daemon log")


def stop_daemon(daemon: subprocess.Popen) -> None:
    """SIGTERM to the daemon's process group, and once the daemon has gone (or a minute
    has passed) SIGKILL to whatever of its group is left: a code server the daemon had
    started again after a kill outlived it (parent 1, for hours, on a removed home)."""
    with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(daemon.pid, 9)
    daemon.wait()


def tree_rss(root: int) -> int:
    """Summed resident memory of `root` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def start_webserver(env: dict[str, str], log: Path, port: int) -> subprocess.Popen:
    """`dagster-webserver` on loopback `port`, in its own session (stopped as a group)."""
    out = log.open("a")
    return subprocess.Popen([str(Path(sys.executable).with_name("dagster-webserver")), "-w",
                             str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
                            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for_webserver(port: int, timeout_s: float = 180.0) -> float:
    """Seconds until the webserver answers GraphQL with the code location loaded."""
    import json
    import urllib.request

    began = time.monotonic()
    query = json.dumps({"query": "{ workspaceOrError { ... on Workspace { locationEntries {"
                                 " locationOrLoadError { __typename } } } } }"}).encode()
    while time.monotonic() - began < timeout_s:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as reply:
                if b"RepositoryLocation" in reply.read():
                    return time.monotonic() - began
        except OSError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"the webserver on port {port} never answered")


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL to a service's whole process group (as a node's crash or `systemctl kill`):
    the daemon takes its code server and every run worker it launched with it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 9)
    process.wait()


def free_port() -> int:
    """A free TCP port on loopback."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
