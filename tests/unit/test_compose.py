"""docker-compose.yml: migrations as the owner, once; the app as the restricted role, with the seal key.

(`docker compose config` is not available on every machine that runs the suite;
this reads the file as compose does and checks what the deployment relies on.)
Bugs it catches: the app connecting as the owner again, the seal key not passed,
the app starting before the migration finished, INTAKE_ALLOW_OWNER slipping in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

COMPOSE = Path(__file__).parents[2] / "docker-compose.yml"


def _services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text("utf-8"))["services"])


def _user(env: dict[str, str]) -> str | None:
    return urlsplit(env["INTAKE_DATABASE_URL"]).username


def test_migrations_run_once_as_the_owner_and_grant_the_app_role() -> None:
    services = _services()
    owner = services["postgres"]["environment"]["POSTGRES_USER"]
    migrate = services["migrate"]
    assert migrate["command"] == ["intake", "migrate"]
    assert migrate["restart"] == "no"
    assert _user(migrate["environment"]) == owner
    assert migrate["environment"]["INTAKE_APP_ROLE"] == "intake_app"
    assert "INTAKE_APP_PASSWORD" in migrate["environment"]


def test_the_app_runs_as_the_restricted_role_with_the_seal_key() -> None:
    services = _services()
    owner = services["postgres"]["environment"]["POSTGRES_USER"]
    for name in ("gateway", "projector"):
        service = services[name]
        env = service["environment"]
        assert service["command"] == ["intake", "serve"]
        assert _user(env) == "intake_app" != owner, name
        assert env["INTAKE_SEAL_KEY"].startswith("${INTAKE_SEAL_KEY:?"), name  # required, not defaulted
        assert "INTAKE_ALLOW_OWNER" not in env, name
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


HAPROXY_CFG = COMPOSE.parent / "deploy" / "haproxy.cfg"


def _proxy_sections() -> dict[str, list[str]]:
    """deploy/haproxy.cfg's sections ("backend gateways", ...) and their directive lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in HAPROXY_CFG.read_text("utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace():
            current = sections.setdefault(line, [])
        else:
            current.append(" ".join(line.split()))
    return sections


def test_replicas_of_both_roles_behind_the_proxy() -> None:
    """Bugs it catches: one replica of a role again; a gateway publishing the port the proxy
    needs; the proxy not mounting the repository's config or not waiting for the gateways."""
    services = _services()
    gateway, worker, proxy = services["gateway"], services["projector"], services["haproxy"]
    assert gateway["environment"]["INTAKE_ROLE"] == "gateway"
    assert worker["environment"]["INTAKE_ROLE"] == "worker"
    assert gateway["deploy"]["replicas"] >= 2 and worker["deploy"]["replicas"] >= 2
    assert "ports" not in gateway and "ports" not in worker  # only the proxy is published
    assert "8080:8080" in proxy["ports"]
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in proxy["volumes"]
    assert "gateway" in proxy["depends_on"]
    for shared in ("postgres", "redis"):  # one PostgreSQL and one Redis for every replica
        healthy = {"condition": "service_healthy"}
        assert worker["depends_on"][shared] == gateway["depends_on"][shared] == healthy
    assert urlsplit(gateway["environment"]["INTAKE_DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(gateway["environment"]["INTAKE_REDIS_URL"]).hostname == "redis"


def test_connections_of_every_replica_fit_postgres() -> None:
    """Each replica opens at most INTAKE_DB_POOL_SIZE connections plus one listener."""
    services = _services()
    command = services["postgres"]["command"]
    max_connections = int(next(c.split("=")[1] for c in command if c.startswith("max_connections=")))
    replicas = services["gateway"]["deploy"]["replicas"] + services["projector"]["deploy"]["replicas"]
    pool = int(services["gateway"]["environment"]["INTAKE_DB_POOL_SIZE"])
    assert replicas * (pool + 1) + 10 <= max_connections  # and room for `intake` commands


def test_the_proxy_config_names_the_gateways_and_checks_their_health() -> None:
    """Bugs it catches: the backend naming another service or fewer servers than replicas, a
    health check on a path the gateway does not serve, no retry on another gateway."""
    from gateway.views.health import OPENAPI_PATHS

    sections = _proxy_sections()
    backend = sections["backend gateways"]
    replicas = _services()["gateway"]["deploy"]["replicas"]
    assert f"server-template gateway {replicas} gateway:8080 check resolvers docker init-addr none" in backend
    assert "option httpchk" in backend
    assert "http-check send meth GET uri /health" in backend and "/health" in OPENAPI_PATHS
    assert "http-check expect status 200" in backend
    assert "balance roundrobin" in backend
    retry = next(line for line in backend if line.startswith("retry-on "))
    assert {"conn-failure", "empty-response", "503"} <= set(retry.split()[1:])
    defaults = sections["defaults"]
    assert "option redispatch 1" in defaults and "retries 3" in defaults
    front = sections["frontend intake"]
    assert "bind :8080" in front and "default_backend gateways" in front
