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
