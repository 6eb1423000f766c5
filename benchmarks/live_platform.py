"""The running platform for the live benchmarks (`arrival`, `day`): a fresh home, Dagster's
instance storage, `dagster-daemon` running the code location as `scripts/run.sh` does
(sensors on, the queued run coordinator, each run in its own process), and the summed
memory of its process tree."""

from __future__ import annotations

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
    """SIGTERM to the daemon's process group; SIGKILL if it has not gone within a minute."""
    try:
        os.killpg(daemon.pid, 15)
        daemon.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(daemon.pid, 9)


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
