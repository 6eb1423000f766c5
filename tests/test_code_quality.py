import subprocess

from tests.conftest import REPO, VENV_BIN


def test_ruff_is_clean():
    result = subprocess.run([str(VENV_BIN / "ruff"), "check", "."], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout


_IMPORT_ALL = """
import importlib, pkgutil, sys
import contimg
for module in pkgutil.walk_packages(contimg.__path__, "contimg."):
    importlib.import_module(module.name)
print(sorted(m for m in sys.modules if m == "dagster" or m.startswith("dagster.")))
"""


def test_the_science_package_never_imports_dagster():
    result = subprocess.run([str(VENV_BIN / "python"), "-c", _IMPORT_ALL], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout


def test_benchmarks_are_not_shipped_in_the_package():
    assert not (REPO / "contimg" / "benchmarks").exists()
    assert (REPO / "benchmarks" / "__main__.py").exists()


def test_settings_are_read_from_the_environment_in_one_place():
    # One validated settings object (contimg/settings.py, locations in contimg/layout.py);
    # the resource hands the process environment to it. Nothing else reads variables.
    allowed = {"contimg/settings.py", "contimg/layout.py", "resources/storage_layout.py"}
    readers = []
    for package in ("contimg", "contimg_assets", "resources", "sensors", "schedules"):
        for path in (REPO / package).rglob("*.py"):
            relative = str(path.relative_to(REPO))
            text = path.read_text()
            if relative not in allowed and ("os.environ" in text or "getenv(" in text):
                readers.append(relative)
    assert readers == []
