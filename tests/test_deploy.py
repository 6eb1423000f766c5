"""The production deployment files (deploy/): the instance configuration is valid for this
Dagster release and says what the README promises; the services bind the UI to loopback.
Runs against a real PostgreSQL cluster are in tests/test_postgres.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_the_production_instance_config_is_valid_and_limits_the_heavy_pools(tmp_path, monkeypatch):
    for key, value in {"HOST": "127.0.0.1", "PORT": "5432", "DB": "contimg", "USER": "contimg",
                       "PASSWORD": "secret"}.items():
        monkeypatch.setenv(f"CONTIMG_PG_{key}", value)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert "postgres" in config["storage"]
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["run_monitoring"]["enabled"] and config["run_retries"]["enabled"]
    # the two keys a real cluster showed were needed (tests/test_postgres.py)
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert config["run_launcher"]["class"] == "LocalRunLauncher"  # a dead worker is seen
    raw = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert "secret" not in (DEPLOY / "dagster.yaml").read_text()  # credentials only from the env
    assert raw["storage"]["postgres"]["postgres_db"]["password"] == {"env": "CONTIMG_PG_PASSWORD"}


def test_the_services_run_the_webserver_on_loopback_and_the_daemon_apart():
    webserver = (DEPLOY / "systemd" / "contimg-webserver.service").read_text()
    daemon = (DEPLOY / "systemd" / "contimg-daemon.service").read_text()
    assert "dagster-webserver" in webserver and '${CONTIMG_UI_HOST:-127.0.0.1}' in webserver
    assert "dagster-daemon run" in daemon and "dagster-webserver" not in daemon
    assert "After=network-online.target postgresql.service contimg-daemon.service" in webserver
    for unit in (webserver, daemon):
        assert "Restart=on-failure" in unit and "EnvironmentFile=/etc/contimg/contimg.env" in unit


def test_operator_commands_get_the_services_environment_as_systemd_reads_it(tmp_path):
    env_file = tmp_path / "contimg.env"
    env_file.write_text("# comment\n; comment\nCONTIMG_HOME=/data/contimg\n"
                        '  CONTIMG_PG_PASSWORD = "p@ss $HOME w#rd"  \n'
                        "CONTIMG_UI_HOST='0.0.0.0'\n\n")
    shown = subprocess.run(
        [DEPLOY / "with-service-env", "sh", "-c",
         'pwd; printf "%s|" "$CONTIMG_HOME" "$CONTIMG_PG_PASSWORD" "$CONTIMG_UI_HOST"'],
        env={"PATH": "/usr/bin:/bin", "CONTIMG_ENV_FILE": str(env_file)},
        capture_output=True, text=True, check=True).stdout.splitlines()
    # in the installation, values verbatim: nothing expanded, '#' inside a value kept
    assert shown == [str(DEPLOY.parent), "/data/contimg|p@ss $HOME w#rd|0.0.0.0|"]
    env_file.write_text("CONTIMG_HOME /data\n")
    refused = subprocess.run([DEPLOY / "with-service-env", "true"], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "CONTIMG_ENV_FILE": str(env_file)})
    assert refused.returncode == 2 and f"{env_file}:1 is not KEY=VALUE" in refused.stderr


def test_the_celery_workers_take_one_step_at_a_time_from_the_shared_configuration():
    from dagster_celery.cli import get_validated_config

    from contimg_assets.executors import CELERY_CONFIG, HEAVY_QUEUES

    unit = (DEPLOY / "systemd" / "contimg-celery-worker.service").read_text()
    assert "--pool=solo" in unit and "-y deploy/celery/celery.yaml" in unit
    # SIGTERM to the worker alone (a warm shutdown: its step finishes), not to the step's
    # CASA or WSClean children, which the default KillMode would kill mid-step
    assert "KillMode=mixed" in unit
    assert ",".join((*HEAVY_QUEUES, "dagster")) in unit  # one comma-joined -q (Celery 5)
    assert CELERY_CONFIG == DEPLOY / "celery" / "celery.yaml"
    text = CELERY_CONFIG.read_text()
    assert "redis://" not in text  # the broker (and its password) only from the environment
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONTIMG_CELERY_BROKER", "redis://127.0.0.1:6379/0")
        config = get_validated_config(str(CELERY_CONFIG))
    assert config["broker"] == config["backend"] == "redis://127.0.0.1:6379/0"
    assert config["config_source"]["task_acks_late"] is True
    assert config["config_source"]["worker_prefetch_multiplier"] == 1


def test_the_executor_setting_selects_celery_only_with_a_redis_broker(tmp_path):
    from contimg.settings import SettingsError, load_settings

    base = {"CONTIMG_HOME": str(tmp_path), "CONTIMG_EXECUTOR": "celery"}
    for broker in ("", "amqp://host//", "redis://"):
        with pytest.raises(SettingsError, match="CONTIMG_CELERY_BROKER"):
            load_settings(base | {"CONTIMG_CELERY_BROKER": broker})
    with pytest.raises(SettingsError, match="CONTIMG_EXECUTOR"):
        load_settings(base | {"CONTIMG_EXECUTOR": "dask"})
    broker = {"CONTIMG_CELERY_BROKER": "redis://:pw@broker:6379/0"}
    # steps on several nodes write the state: SQLite files are refused, PostgreSQL taken
    with pytest.raises(SettingsError, match="CONTIMG_STATE_URL"):
        load_settings(base | broker)
    assert load_settings(base | broker | {"CONTIMG_STATE_URL": "postgresql://c:pw@head:5432/state"})[
        "CONTIMG_EXECUTOR"] == "celery"
