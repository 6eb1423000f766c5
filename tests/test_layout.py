import subprocess
from pathlib import Path

import pytest

from contimg.layout import LayoutError, resolve_layout
from tests.conftest import VENV_BIN


def test_defaults_follow_the_seed_layout(layout_env: Path):
    layout = resolve_layout().ensure()
    assert layout.state_dir == layout_env / "data" / "state"
    assert layout.incoming_dir == layout_env / "stage" / "incoming"
    for sub in ("ms/calibrators", "ms/science", "ms/failed", "static/beam-model",
                "static/catalogs", "static/config", "tmp/staging", "tmp/parts", "tmp/cache",
                "archive/ms", "archive/images", "archive/catalogs"):
        assert (layout_env / "stage" / sub).is_dir(), sub
    assert layout.ms_date_dir("science", "2025-10-13T13:28:03") == (
        layout_env / "stage" / "ms" / "science" / "2025-10-13")


def test_environment_beats_config_file_beats_default(layout_env, tmp_path, monkeypatch):
    config = tmp_path / "contimg.toml"
    config.write_text(f'[paths]\ninput_dir = "{tmp_path / "from_file"}"\n'
                      f'images_dir = "{tmp_path / "images_file"}"\n')
    monkeypatch.setenv("CONTIMG_CONFIG", str(config))
    monkeypatch.setenv("CONTIMG_INPUT_DIR", str(tmp_path / "from_env"))
    layout = resolve_layout()
    assert layout.incoming_dir == tmp_path / "from_env"
    assert layout.origins["CONTIMG_INPUT_DIR"] == "environment"
    assert layout.images_dir == tmp_path / "images_file"
    assert layout.origins["CONTIMG_IMAGES_DIR"].startswith("config file")
    assert layout.origins["CONTIMG_MOSAICS_DIR"] == "default"


def test_impossible_path_names_variable_path_and_fix(layout_env, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    monkeypatch.setenv("CONTIMG_OUTPUT_DIR", str(blocker / "ms"))
    with pytest.raises(LayoutError) as info:
        resolve_layout().ensure()
    message = str(info.value)
    assert "CONTIMG_OUTPUT_DIR" in message and str(blocker / "ms") in message
    assert "Fix:" in message


def test_a_comment_left_in_an_environment_file_is_refused(layout_env, tmp_path, monkeypatch):
    # systemd's EnvironmentFile= keeps "  # ..." in the value; a directory named with it
    # would be made silently.
    monkeypatch.setenv("CONTIMG_HOME", f"{tmp_path}/data   # or each CONTIMG_*_DIR")
    with pytest.raises(LayoutError) as info:
        resolve_layout()
    assert "CONTIMG_HOME=" in str(info.value) and "a line of its own" in str(info.value)
    monkeypatch.setenv("CONTIMG_HOME", f"{tmp_path}/data#1")  # a '#' inside a name is a name
    assert resolve_layout().paths["CONTIMG_DATA_DIR"] == tmp_path / "data#1" / "data"


def test_bad_config_file_is_reported(layout_env, tmp_path, monkeypatch):
    config = tmp_path / "bad.toml"
    config.write_text("[paths]\nno_such_dir = '/x'\n")
    monkeypatch.setenv("CONTIMG_CONFIG", str(config))
    with pytest.raises(LayoutError, match="unknown key paths.no_such_dir"):
        resolve_layout()


def test_doctor_reports_layout_tools_and_exits_zero(layout_env):
    result = subprocess.run([str(VENV_BIN / "contimg"), "doctor"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for expected in ("CONTIMG_INPUT_DIR", "free", "casatools 6.", "WSClean version",
                     "rclone v", "doctor: OK"):
        assert expected in result.stdout


def test_doctor_fails_on_an_unusable_path(layout_env, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("CONTIMG_STATE_DIR", str(blocker))
    result = subprocess.run([str(VENV_BIN / "contimg"), "doctor"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1
    assert "CONTIMG_STATE_DIR" in result.stdout
