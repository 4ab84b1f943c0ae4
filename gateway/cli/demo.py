"""`intake demo [--storm]`: serve with demo tokens and the `gis_data/` reference data, and
optionally play a simulated storm through the real channel endpoints over HTTP.

The storm is a client like any channel system: CTI call events (answered and
abandoned calls, so missed calls are redistributed), Twilio SMS signed with the
configured auth token, Open311 web reports, one-touch alarm events; then a
dispatcher dispatches the new cases to the best provider for their category
with `expected_version`. A channel whose endpoint is not there (404 / 503) is
skipped with one line of explanation.

It is a storm over three places of Qindu district taken from the demo gazetteer
(`gis_data/demo_places.geojson`): SMS name the place in their text (the gazetteer
locates them), web reports are filed as `power_fault` (95598 fields filled) at
points around it, so the outages of one place link and form an incident.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import json
import random
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import structlog
from aiohttp import web

from channels.signatures import twilio_signature
from gateway.settings import Settings

log = structlog.get_logger(__name__)

GIS = Path(__file__).resolve().parents[2] / "gis_data"
CENTRE = (34.3455, 108.7120)
"""The storm's eye: Qindu district, Xianyang (WGS84)."""
STORM_DISTRICT = "610402"
"""Qindu district (秦都区): the storm's places are taken from the gazetteer there."""
AREAS = 3
REPORTS = ("整条街停电了，路灯也不亮", "家里突然没电，邻居家也没电", "电线被大风刮断了，垂在路边很危险",
           "变压器冒烟，有焦味", "整栋楼停电了，冰箱里的东西要坏了", "小区整栋楼停电，电梯困人")
"""What a citizen writes in the storm (the classifier makes them power faults, the dangers priority 1)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Area:
    """A place of the gazetteer hit by the storm: its name and a point in it (WGS84)."""

    name: str
    lat: float
    lon: float


def storm_areas(n: int = AREAS, path: Path | None = None) -> list[Area]:
    """The `n` places of Qindu district nearest the storm's eye whose name is unique in the gazetteer
    (so an SMS naming one is located without doubt)."""
    import shapely.geometry

    features = json.loads((path or GIS / "demo_places.geojson").read_text(encoding="utf-8"))["features"]
    names = [str(f["properties"]["name"]) for f in features]
    found = []
    for f in features:
        props = f["properties"]
        name = str(props["name"])
        if props.get("district") != STORM_DISTRICT or names.count(name) != 1 or len(name) < 3:
            continue
        spot = shapely.geometry.shape(f["geometry"]).representative_point()
        far = (spot.y - CENTRE[0]) ** 2 + (spot.x - CENTRE[1]) ** 2
        found.append((far, Area(name, round(spot.y, 6), round(spot.x, 6))))
    return [area for _, area in sorted(found, key=lambda x: x[0])[:n]]


AGENTS = ("A001", "A002", "A003", "A004")
"""The agents the storm's calls ring; the first is the demo's `agent` console, rung by repeat callers
so that its caller card (来电弹屏) shows a history."""
HARASSER = "13700000001"
"""Blacklisted in `gis_data/demo_customers.geojson`: its calls are recorded, counted, never called back."""
ALARM_ACCOUNTS = ("E0001", "E0002")


@dataclasses.dataclass
class Storm:
    """A simulated storm played against a running gateway at `base` (e.g. http://127.0.0.1:8080)."""

    base: str
    tokens: Mapping[str, str]
    twilio_token: str | None
    pace: float = 1.5
    waves: int = 12
    seed: int = 95598
    skipped: set[str] = dataclasses.field(default_factory=set)
    sent: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.ids = itertools.count(1)
        self.run_id = secrets.token_hex(3)
        self.areas = storm_areas()

    def _auth(self, role: str) -> dict[str, str]:
        token = self.tokens.get(role) or self.tokens.get("admin", "")
        return {"Authorization": f"Bearer {token}"}

    async def _post(self, http: aiohttp.ClientSession, channel: str, path: str, **kwargs: Any) -> Any:
        if channel in self.skipped:
            return None
        async with http.post(self.base + path, **kwargs) as response:
            text = await response.text()
            if response.status in (404, 503):
                self.skipped.add(channel)
                print(f"storm: {channel} endpoint {path} answered {response.status}; skipping it", flush=True)
                return None
            if response.status == 409 and channel == "dispatch":
                # the case moved on since the list was read (linking joined it to an incident,
                # automatic dispatch sent it): what a dispatcher sees as "changed meanwhile"
                log.info("storm_dispatch_skipped_case_changed", status=response.status)
                return None
            if response.status >= 400:
                log.warning("storm_input_refused", channel=channel, status=response.status)
                return None
            self.sent[channel] = self.sent.get(channel, 0) + 1
            try:
                return json.loads(text) if text else None
            except ValueError:
                return text

    def _area(self) -> Area:
        return self.random.choice(self.areas)

    def _point(self, area: Area, spread: float = 0.0015) -> tuple[float, float]:
        """A point some 150 m around the area's (the linking radius is 1 km)."""
        return (area.lat + self.random.uniform(-spread, spread),
                area.lon + self.random.uniform(-spread, spread))

    def _phone(self) -> str:
        return "13" + "".join(str(self.random.randint(0, 9)) for _ in range(9))

    async def calls(self, http: aiohttp.ClientSession, callers: list[str],
                    ring_first: str | None = None) -> None:
        """Calls offered to an agent (its phone rings, its console shows the caller card): most
        abandoned (everyone is busy), some answered by that agent. `ring_first` rings the first agent."""
        now = datetime.now(UTC)
        for caller in callers:
            call_id = f"storm-{self.run_id}-{next(self.ids)}"
            # the harasser hangs up every time (a missed call it must never be called back on)
            answered = self.random.random() < 0.3 and caller != HARASSER
            offered = now - timedelta(seconds=self.random.randint(5, 90))
            agent = AGENTS[0] if caller == ring_first else self.random.choice(AGENTS)
            events = [("offered", offered), ("answered" if answered else "abandoned", now)]
            for kind, at in events:
                body = {"event_id": f"{call_id}:{kind}", "type": kind, "call_id": call_id, "caller": caller,
                        "queue": "95598", "at": at.isoformat()}
                if kind != "abandoned":
                    body["agent"] = agent
                await self._post(http, "cti", "/channels/cti/events", json=body,
                                 headers=self._auth("channel"))

    async def sms(self, http: aiohttp.ClientSession, caller: str) -> None:
        """An SMS report, signed like Twilio signs it."""
        if self.twilio_token is None:
            self.skipped.add("sms")
            return
        url = self.base + "/channels/twilio/sms"
        text = f"{self.random.choice(REPORTS)}，地址：秦都区{self._area().name}"
        form = {"MessageSid": f"SM{secrets.token_hex(16)}", "AccountSid": "ACdemo", "From": f"+86{caller}",
                "To": "+8695598", "Body": text}
        signature = twilio_signature(self.twilio_token, url, {k: [v] for k, v in form.items()}, "HMAC_SHA1")
        await self._post(http, "sms", "/channels/twilio/sms", data=urlencode(form),
                         headers={"X-Twilio-Signature": signature,
                                  "Content-Type": "application/x-www-form-urlencoded"})

    async def web_report(self, http: aiohttp.ClientSession, caller: str) -> None:
        """A citizen's Open311 outage report (95598 fields filled) around one of the storm's places."""
        area = self._area()
        lat, lon = self._point(area)
        began = datetime.now(UTC) - timedelta(minutes=self.random.randint(5, 40))
        form = {"api_key": self.tokens.get("channel", ""), "service_code": "power_fault", "lat": f"{lat:.6f}",
                "long": f"{lon:.6f}", "description": self.random.choice(REPORTS), "phone": caller,
                "first_name": self.random.choice("王李张刘陈杨赵黄"), "last_name": "先生",
                "address_string": f"咸阳市秦都区{area.name}{self.random.randint(1, 30)}号",
                "attribute[account_number]": f"61000{self.random.randint(10000, 99999)}",
                "attribute[fault_type]": "no_power", "attribute[fault_began_at]": began.isoformat(),
                "attribute[fault_scope]": self.random.choice(("building", "street", "area"))}
        await self._post(http, "web", "/open311/v2/requests.json", data=form,
                         headers={"Idempotency-Key": f"storm-{self.run_id}-{next(self.ids)}"})

    async def alarm(self, http: aiohttp.ClientSession) -> None:
        """An elder presses the one-touch button."""
        body = {"event_id": f"storm-{self.run_id}-{next(self.ids)}", "code": "MA",
                "account": self.random.choice(ALARM_ACCOUNTS), "at": datetime.now(UTC).isoformat()}
        await self._post(http, "alarm", "/channels/alarm/events", json=body, headers=self._auth("channel"))

    async def presence(self, http: aiohttp.ClientSession) -> None:
        """Put the demo agents online so missed calls are shared out."""
        for agent in AGENTS:
            async with http.put(f"{self.base}/api/v1/agents/{agent}/presence", json={"status": "online"},
                                headers=self._auth("admin")) as response:
                if response.status == 404:
                    return

    async def dispatch_waiting(self, http: aiohttp.ClientSession) -> None:
        """A dispatcher sends accepted cases to the best provider for their category (expected_version)."""
        async with http.get(f"{self.base}/api/v1/cases?status=accepted&limit=20",
                            headers=self._auth("dispatcher")) as response:
            if response.status != 200:
                return
            cases = (await response.json()).get("items", [])
        for case in cases[:3]:
            location = case.get("location") or {}
            if location.get("lat") is None:
                continue
            async with http.get(f"{self.base}/api/v1/providers/nearest?lat={location['lat']}"
                                f"&lon={location['lon']}&k=1&category={case.get('category', '')}",
                                headers=self._auth("dispatcher")) as response:
                found = (await response.json()).get("items", []) if response.status == 200 else []
            if found:
                await self._dispatch(http, case, found[0]["id"])

    async def _dispatch(self, http: aiohttp.ClientSession, case: dict[str, Any], provider: str) -> None:
        """Dispatch at the case's version; when it moved on meanwhile (routed, linked), read it
        again and retry while it still waits, as a dispatcher would."""
        version = case["version"]
        for _ in range(3):
            done = await self._post(http, "dispatch", f"/api/v1/cases/{case['case_id']}/dispatch",
                                    json={"expected_version": version, "to": provider, "kind": "provider"},
                                    headers=self._auth("dispatcher"))
            if done is not None or "dispatch" in self.skipped:
                return
            async with http.get(f"{self.base}/api/v1/cases/{case['case_id']}",
                                headers=self._auth("dispatcher")) as response:
                now = await response.json() if response.status == 200 else {}
            if now.get("status") != "accepted":
                return
            version = now["version"]

    async def wave(self, http: aiohttp.ClientSession, number: int, repeaters: list[str]) -> None:
        """One wave: calls (with repeat callers), an SMS, a web report, now and then an alarm."""
        repeater = self.random.choice(repeaters)
        callers = [self._phone() for _ in range(2)] + [repeater] + ([HARASSER] if number % 4 == 3 else [])
        await self.calls(http, callers, ring_first=repeater)
        await self.sms(http, self._phone())
        await self.web_report(http, self.random.choice(repeaters))
        if number % 4 == 1:
            await self.alarm(http)
        if number % 3 == 2:
            await self.dispatch_waiting(http)

    async def play(self) -> dict[str, int]:
        """Play every wave; the counts of inputs sent by channel."""
        repeaters = [self._phone() for _ in range(4)]
        async with aiohttp.ClientSession() as http:
            await self.presence(http)
            for number in range(self.waves):
                await self.wave(http, number, repeaters)
                print(f"storm: wave {number + 1}/{self.waves} sent ({self._summary()})", flush=True)
                await asyncio.sleep(self.pace)
        return dict(self.sent)

    def _summary(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(self.sent.items())) or "nothing accepted yet"


def demo_files() -> list[Path]:
    """The reference data files `intake demo` loads."""
    return sorted(GIS.glob("*.geojson"))


def _print_tokens(settings: Settings) -> dict[str, str]:
    by_role: dict[str, str] = {}
    for token, who in settings.http.tokens.items():
        by_role.setdefault(who.role, token)
    base = f"http://{settings.http.host}:{settings.http.port}"
    print("demo tokens (role subject token):", flush=True)
    for token, who in settings.http.tokens.items():
        node = f" (organisation node {who.org})" if who.org else ""
        print(f"  {who.role:<10} {who.subject:<14} {token}{node}", flush=True)
    for role in ("dispatcher", "auditor", "agent", "unit"):
        if role in by_role:
            print(f"console as {role}: {base}/?token={by_role[role]}", flush=True)
    for token, who in settings.http.tokens.items():
        if who.org:
            print(f"console as {who.role} of {who.org}: {base}/?token={token}", flush=True)
    web = [t for t, who in settings.http.tokens.items() if who.scope == frozenset({"web"})]
    if web:
        print(f"citizen form: {base}/citizen/?api_key={web[0]}", flush=True)
    return by_role


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """`intake demo [--storm]`: serve with demo data until interrupted."""
    from gateway.cli.loader import load_paths
    from gateway.cli.serve import demo_tokens, serve
    from gateway.services import SERVICES

    demo = dataclasses.replace(
        settings, http=dataclasses.replace(settings.http, tokens=settings.http.tokens or demo_tokens()),
        twilio=dataclasses.replace(settings.twilio,
                                   auth_token=settings.twilio.auth_token or secrets.token_hex(16)))
    running: list[asyncio.Task[object]] = []

    async def after_start(live: Settings, app: web.Application) -> None:
        stats = await load_paths(app[SERVICES], demo_files())
        print(f"demo data from {GIS}: {stats.summary()}", flush=True)
        by_role = _print_tokens(live)
        if getattr(args, "storm", False):
            storm = Storm(f"http://{live.http.host}:{live.http.port}", by_role, live.twilio.auth_token)
            running.append(asyncio.create_task(storm.play(), name="demo-storm"))

    return await serve(demo, after_start=after_start)
