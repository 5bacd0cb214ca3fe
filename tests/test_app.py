from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from partners.settings import Settings, describe_settings_error


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["database"] in ("sqlite", "postgresql")


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"


async def test_unknown_route_is_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert "partners_http_requests_total" in response.text


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "Namaskah Partners"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AFFILIATE_COMMISSION_RATES", '{"starter": 1.5}'),
        ("AFFILIATE_COMMISSION_RATES", "not json"),
        ("PAYOUT_MINIMUM_AMOUNT", "fifty"),
        ("COMMISSION_CALCULATION_FREQUENCY", "yearly"),
    ],
)
def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(Exception) as caught:
        Settings(_env_file=None)  # type: ignore[call-arg]
    line = describe_settings_error(caught.value)  # type: ignore[arg-type]
    assert line.startswith(f"invalid setting {variable}:")
    assert "\n" not in line


def test_plan_variables_parse_in_their_documented_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFFILIATE_COMMISSION_RATES", '{"starter": 0.05, "pro": 0.15, "enterprise": 0.25}')
    monkeypatch.setenv("PAYOUT_MINIMUM_AMOUNT", "50.0")
    monkeypatch.setenv("COMMISSION_CALCULATION_FREQUENCY", "daily")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert str(settings.affiliate_commission_rates["pro"]) == "0.15"
    assert settings.payout_minimum_minor() == 5000
    assert settings.commission_calculation_frequency == "daily"


def test_a_production_server_tunes_the_garbage_collector_and_others_do_not(tmp_path: Path) -> None:
    """In a fresh interpreter (gc.freeze() is process-wide): the app's start-up in production freezes the
    start-up objects and raises the young generation's threshold; a development app leaves the defaults."""
    script = (
        "import asyncio, gc, json\n"
        "from partners.app import create_app\n"
        "async def main():\n"
        "    app = create_app()\n"
        "    async with app.router.lifespan_context(app):\n"
        "        print(json.dumps([gc.get_threshold()[0], gc.get_freeze_count() > 0]))\n"
        "asyncio.run(main())\n"
    )
    found = {}
    for environment in ("production", "development"):
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PARTNERS_", "DATABASE_"))}
        env.update(
            PARTNERS_ENV=environment,
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}",
            SECRET_KEY="test-secret-key-0123456789abcdef",
            PARTNERS_EMBEDDED_WORKER="false",
            PARTNERS_BASE_URL="https://partners.example",
            PARTNERS_CLICK_JOURNAL_DIR=str(tmp_path / "clicks"),
        )
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True
        )
        found[environment] = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"production": [50_000, True], "development": [700, False]}


def _routes_by_router(app: Any) -> list[tuple[int, Any]]:
    """(router number, route) for every route of the app, the included routers' routes flattened."""
    found = []
    for number, route in enumerate(app.router.routes):
        included = getattr(route, "original_router", None)
        found.extend((number, inner) for inner in (included.routes if included is not None else [route]))
    return found


def test_no_path_is_answered_by_two_routers(app: Any) -> None:
    """`app._include_routers` orders the routers by traffic: that must not change which route answers."""
    routes = [(number, route) for number, route in _routes_by_router(app) if hasattr(route, "path_regex")]
    assert len(routes) > 150
    overlaps = []
    for number, route in routes:
        example = re.sub(r"\{[^}]+\}", "1", route.path)
        for other_number, other in routes:
            shared_methods = (getattr(route, "methods", None) or set()) & (getattr(other, "methods", None) or set())
            if other_number != number and shared_methods and other.path_regex.match(example):
                overlaps.append(f"{sorted(shared_methods)} {example}: {route.path} and {other.path}")
    assert overlaps == []
