"""Every setting is validated once, with the variable (or TOML key) named in the error."""

from __future__ import annotations

import subprocess

import pytest

from contimg.settings import SPECS, SettingsError, load_settings
from tests.conftest import REPO, VENV_BIN

NUMERIC = [s.variable for s in SPECS if s.kind in ("int", "float")]


@pytest.mark.parametrize("variable", NUMERIC)
@pytest.mark.parametrize("bad", ["soon", "nan", "inf", "-30", "", " "])
def test_every_numeric_setting_rejects_bad_values_naming_the_variable(variable, bad, layout_env):
    with pytest.raises(SettingsError) as info:
        load_settings({"CONTIMG_HOME": str(layout_env), variable: bad})
    assert variable in str(info.value) and "Fix:" in str(info.value)


def test_good_values_come_through_typed(layout_env):
    settings = load_settings({"CONTIMG_HOME": str(layout_env), "CONTIMG_FILE_SETTLE_S": "2.5",
                              "CONTIMG_SENSOR_INTERVAL_S": "30", "CONTIMG_DEMO": "1",
                              "CONTIMG_RETENTION_SCIENCE_MS_DAYS": "none"})
    assert settings["CONTIMG_FILE_SETTLE_S"] == 2.5
    assert settings["CONTIMG_SENSOR_INTERVAL_S"] == 30
    assert settings["CONTIMG_DEMO"] is True
    assert settings["CONTIMG_RETENTION_SCIENCE_MS_DAYS"] is None
    assert settings.origins["CONTIMG_FILE_SETTLE_S"] == "environment"


def test_toml_settings_are_typed_and_checked(layout_env, tmp_path):
    config = tmp_path / "contimg.toml"
    config.write_text('[ingest]\nfile_settle_s = 7\nincomplete_policy = "convert"\n'
                      '[disk]\ndisk_warn_free_gb = 300\n')
    settings = load_settings({"CONTIMG_HOME": str(layout_env), "CONTIMG_CONFIG": str(config)})
    assert settings["CONTIMG_FILE_SETTLE_S"] == 7.0
    assert settings["CONTIMG_INCOMPLETE_POLICY"] == "convert"
    assert settings.origins["CONTIMG_DISK_WARN_FREE_GB"] == "config file"
    for text, named in (('[ingest]\nfile_settle_s = "soon"\n', "[ingest] file_settle_s"),
                        ('[ingest]\nfile_settle_s = true\n', "[ingest] file_settle_s"),
                        ('[ingest]\nno_such = 1\n', "ingest.no_such"),
                        ('[nonsense]\nx = 1\n', "[nonsense]"),
                        ('[paths]\ninput_dir = 5\n', "paths.input_dir = 5"),
                        ('[ingest]\nincomplete_policy = 3\n', "incomplete_policy")):
        config.write_text(text)
        with pytest.raises(SettingsError, match=named.replace("[", r"\[").replace("]", r"\]")):
            load_settings({"CONTIMG_HOME": str(layout_env), "CONTIMG_CONFIG": str(config)})


def test_a_webhook_url_without_scheme_is_refused_without_printing_its_token(layout_env):
    with pytest.raises(SettingsError) as info:
        load_settings({"CONTIMG_HOME": str(layout_env),
                       "CONTIMG_ALERT_WEBHOOK_URL": "hooks.slack.com/services/T0/B0/SECRETTOKEN"})
    assert "CONTIMG_ALERT_WEBHOOK_URL" in str(info.value)
    assert "SECRETTOKEN" not in str(info.value)


def test_the_code_location_refuses_to_load_with_a_bad_setting(layout_env):
    env = {"CONTIMG_HOME": str(layout_env), "CONTIMG_SENSOR_INTERVAL_S": "-30", "PATH": "/usr/bin"}
    result = subprocess.run([str(VENV_BIN / "python"), "-c", "import contimg_assets.definitions"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "CONTIMG_SENSOR_INTERVAL_S='-30' is out of range" in result.stderr


def test_doctor_never_prints_the_remote_credentials(layout_env):
    env = {"CONTIMG_HOME": str(layout_env), "PATH": "/usr/bin:/bin",
           "CONTIMG_RCLONE_REMOTE": "archive,pass=hunter2:dsa110"}
    result = subprocess.run([str(VENV_BIN / "contimg"), "doctor"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert "CONTIMG_RCLONE_REMOTE" in result.stdout and "archive,pass=***:dsa110" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr
