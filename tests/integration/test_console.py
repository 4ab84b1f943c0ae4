"""The console's page, static files, districts GeoJSON, KPIs and who-am-I, on a real database."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.cli.loader import catch_up_reference, load_paths
from tests.conftest import auth

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "gateway" / "static" / "console"


async def test_the_page_and_every_module_it_imports_are_served_locally(client: Any) -> None:
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    assert '<script type="module" src="/console/app.js">' in html and "http" not in html.split("<body>")[0]
    for path in sorted(p for p in STATIC.rglob("*") if p.is_file()):
        response = await client.get(f"/console/{path.relative_to(STATIC).as_posix()}")
        assert response.status == 200, path.name
        text = await response.text()
        for imported in re.findall(r"from '\./([a-z]+\.js)'", text):
            assert (STATIC / imported).exists(), f"{path.name} imports missing {imported}"
        assert "https://" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    js = await client.get("/console/app.js")
    assert "javascript" in js.content_type


async def test_map_tiles_are_off_unless_configured(client: Any) -> None:
    html = await (await client.get("/")).text()
    assert '<meta name="intake-tiles" content="">' in html


async def test_districts_are_the_real_polygons_as_geojson(client: Any, services: Any) -> None:
    assert (await client.get("/api/v1/districts")).status == 401
    await load_paths(services, [ROOT / "gis_data" / "districts.geojson"])
    await catch_up_reference(services)
    body = await (await client.get("/api/v1/districts", headers=auth("t-unit"))).json()
    assert body["type"] == "FeatureCollection"
    names = {f["properties"]["name"] for f in body["features"]}
    assert {"秦都区", "渭城区"} <= names
    assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in body["features"])
    assert {f["properties"]["city"] for f in body["features"]} >= {"咸阳市"}


async def test_me_tells_the_console_who_signed_in(client: Any) -> None:
    assert (await client.get("/api/v1/me")).status == 401
    body = await (await client.get("/api/v1/me", headers=auth("t-unit"))).json()
    assert body == {"role": "unit", "subject": "U001", "sees_personal_data": False}


async def test_kpis_compute_from_the_read_models(client: Any, services: Any) -> None:
    now = datetime.now(UTC)
    rows = [("c1", now - timedelta(minutes=9), now - timedelta(minutes=9, seconds=-10), None),
            ("c2", now - timedelta(minutes=8), now - timedelta(minutes=8, seconds=-30), None),
            ("c3", now - timedelta(minutes=7), None, now - timedelta(minutes=6)),
            ("c4", now - timedelta(minutes=6), now - timedelta(minutes=6, seconds=-20), None)]
    async with services.pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO calls (call_id, caller, status, offered_at, answered_at, abandoned_at, version) "
            "VALUES ($1, '13800138000', 'x', $2, $3, $4, 0)", rows)
    body = await (await client.get("/api/v1/kpis", headers=auth("t-dispatcher"))).json()
    kpis = body["kpis"]
    assert kpis["answer_rate"]["value"] == 0.75 and kpis["answer_rate"]["target"] == 0.95
    assert kpis["average_wait_s"]["value"] == 20.0
    assert kpis["abandoned_per_hour"]["total"] == 1
    assert len(kpis["abandoned_per_hour"]["series"]) in (24, 25)
    assert kpis["cases_by_light"]["series"] == {"green": 0, "yellow": 0, "red": 0}
    assert kpis["first_contact_resolution"]["value"] is None
    assert kpis["open_missed_calls"]["value"] == 0
    assert set(body["sources"]) == {"calls", "cases", "missed_calls"}


async def test_kpis_are_for_the_center_not_for_units_and_check_the_window(client: Any) -> None:
    assert (await client.get("/api/v1/kpis", headers=auth("t-unit"))).status == 403
    bad = await client.get("/api/v1/kpis?hours=0", headers=auth("t-auditor"))
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "bad_parameter"


async def test_a_token_in_the_address_is_neither_reflected_nor_kept_by_the_server(
    client: Any, pg_pool: Any
) -> None:
    """`GET /?token=`: the page takes the token in the browser; the server does nothing with it."""
    before = await pg_pool.fetchval("SELECT count(*) FROM events")
    for token in ("t-dispatcher", "<script>alert(1)</script>", "not-a-token"):
        page = await client.get("/", params={"token": token})
        assert page.status == 200 and page.content_type == "text/html"
        assert page.headers["Cache-Control"] == "no-cache"
        assert "Set-Cookie" not in page.headers
        text = await page.text()
        assert token not in text
        assert '<script type="module" src="/console/app.js"></script>' in text
    api = await (await client.get("/console/api.js")).text()
    assert "searchParams.get('token')" in api and "searchParams.delete('token')" in api
    assert "t-dispatcher" not in await (await client.get("/metrics")).text()
    assert await pg_pool.fetchval("SELECT count(*) FROM events") == before
    # The token is a bearer token only in the header: in the address it grants nothing.
    assert (await client.get("/api/v1/me", params={"token": "t-dispatcher"})).status == 401
