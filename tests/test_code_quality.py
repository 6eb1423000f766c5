import subprocess

from tests.conftest import REPO, VENV_BIN


def test_ruff_is_clean():
    result = subprocess.run([str(VENV_BIN / "ruff"), "check", "."], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
