"""docker-compose.yml as Docker Compose v2 reads it (`docker compose config`, no daemon needed; the
binary comes from Debian's package through scripts/services/compose.sh): the services, the dev
profile, healthchecks, the start order, and that secrets only come from the environment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = {"api-server", "scheduler", "dag-processor", "triggerer", "celery-worker"}
PRODUCTION = AIRFLOW | {"postgres", "redis", "airflow-init", "sms-receiver"}
DEV = {"devsmsc", "demo-datamart"}


@pytest.fixture(scope="module")
def compose():
    try:
        path = subprocess.run([str(ROOT / "scripts/services/compose.sh")], check=True, capture_output=True,
                              text=True, timeout=600).stdout.strip().splitlines()[-1]
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"no Docker Compose v2 binary: {exc.stderr[-2000:]}")

    def run(*args: str, env_file: str | None = str(ROOT / ".env.example"), profile: str | None = None):
        cmd = [path, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml")]
        cmd += ["--env-file", env_file] if env_file else []
        cmd += ["--profile", profile] if profile else []
        # an empty environment: nothing from the machine leaks into the check
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})

    return run


@pytest.fixture(scope="module")
def config(compose):
    proc = compose("config", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def dev_config(compose):
    proc = compose("config", "--format", "json", profile="dev")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_services_and_the_dev_profile(config, dev_config):
    assert config["name"] == "qz-outbound"
    assert set(config["services"]) == PRODUCTION
    assert set(dev_config["services"]) == PRODUCTION | DEV
    for name in DEV:
        assert dev_config["services"][name]["profiles"] == ["dev"]


def test_airflow_runs_on_celery_with_redis_and_the_fab_auth_manager(config):
    for name in AIRFLOW | {"airflow-init"}:
        env = config["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:") and "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://airflow:")
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://api-server:8080/execution/"
        assert {"AIRFLOW_CONN_DATAMART", "AIRFLOW_CONN_MARKETING_DB", "AIRFLOW_CONN_SMSC"} <= set(env)
    worker = config["services"]["celery-worker"]
    assert worker["command"] == ["celery", "worker"] and worker["deploy"]["replicas"] == 2
    assert config["services"]["sms-receiver"]["entrypoint"][-1] == "receive"
    # the API is published on loopback only (a TLS proxy in front)
    (port,) = config["services"]["api-server"]["ports"]
    assert port["host_ip"] == "127.0.0.1" and port["target"] == 8080


def test_every_long_running_service_has_a_healthcheck(dev_config):
    for name, svc in dev_config["services"].items():
        if name in ("airflow-init", "demo-datamart"):   # jobs: they run to completion
            assert svc["restart"] == "no", name
            continue
        assert svc.get("healthcheck", {}).get("test"), name


def test_start_order(config, dev_config):
    s = config["services"]

    def deps(name):
        return {k: v["condition"] for k, v in s[name].get("depends_on", {}).items()}

    assert deps("airflow-init") == {"postgres": "service_healthy", "redis": "service_healthy"}
    for name in AIRFLOW:
        d = deps(name)
        assert d["postgres"] == "service_healthy" and d["redis"] == "service_healthy", name
        assert d["airflow-init"] == "service_completed_successfully", name
    assert deps("celery-worker")["api-server"] == "service_healthy"   # workers report to the execution API
    assert deps("sms-receiver") == {"postgres": "service_healthy", "airflow-init": "service_completed_successfully"}
    assert dev_config["services"]["demo-datamart"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_init_job_migrates_creates_users_roles_pools_and_checks_connections(config):
    init = config["services"]["airflow-init"]
    assert init["entrypoint"] == ["/bin/bash", "/opt/qz/deploy/airflow-init.sh"]
    script = (ROOT / "deploy/airflow-init.sh").read_text()
    for step in ("airflow db migrate", "airflow fab-db migrate", "airflow pools import \"${QZ_HOME:-/opt/qz}/config/pools.json\"",
                 "airflow roles create", "airflow users create", "get_connection_from_secrets"):
        assert step in script, step
    assert {"ADMIN_PASSWORD", "HQ_PASSWORD"} <= set(init["environment"])


def test_secrets_only_from_the_environment(compose, config):
    # without an env file, compose refuses: every secret is a required variable
    proc = compose("config", "-q", env_file=None)
    assert proc.returncode != 0 and "is missing a value" in proc.stderr
    # the values in the rendered config are the example's placeholders, nothing baked into the file
    text = (ROOT / "docker-compose.yml").read_text()
    for var in ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "REDIS_PASSWORD", "AIRFLOW_FERNET_KEY",
                "AIRFLOW_JWT_SECRET", "AIRFLOW_CONN_SMSC"):
        assert f"${{{var}:?" in text, var
    env = config["services"]["scheduler"]["environment"]
    assert "change-me" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert json.loads(env["AIRFLOW_CONN_SMSC"])["conn_type"] == "generic"
    # .env is never committed; .env.example is
    tracked = subprocess.run(["git", "ls-files", ".env", ".env.example"], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert ".env" not in tracked
