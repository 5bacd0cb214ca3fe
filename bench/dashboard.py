"""3. The partner dashboard on a large history (bench/generate.py): `GET /affiliate/dashboard` and the portal
page `/portal`, p50/p95 for a 30-day and a 365-day period, one client at a time. The API's numbers are
checked against a recount from the raw tables."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from bench import common
from bench.generate import Credentials, Generated, Profile, credentials, generate
from bench.options import Options

DATABASE = "partners_bench_history"
PERIODS = ("30d", "365d")
TARGET_P95_MS = 150.0
CONNECTIONS = 1


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    headers: dict[str, str]


def pages(tokens: Credentials) -> list[Page]:
    bearer = {"Authorization": f"Bearer {tokens.partner_token}"}
    cookie = {"Cookie": f"partners_partner_session={tokens.partner_token}"}
    return [
        *(Page(f"GET /affiliate/dashboard?period={p}", f"/affiliate/dashboard?period={p}", bearer) for p in PERIODS),
        *(Page(f"GET /portal?period={p}", f"/portal?period={p}", cookie) for p in PERIODS),
    ]


def script(page: Page) -> str:
    headers = ", ".join(f'["{name}"] = "{value}"' for name, value in page.headers.items())
    return f"""
local headers = {{{headers}}}
request = function()
  return wrk.format("GET", "{page.path}", headers)
end
"""


def history(engine: common.Engine, options: Options) -> tuple[str, Generated]:
    """The large history in its own database, generated (or, with --reuse-history, kept from a run before)."""
    summary = common.DATA / f"{DATABASE}-{engine}-{options.scale:g}.json"
    url = common.database_url(engine, DATABASE)
    if options.reuse_history and summary.exists():
        common.log(f"dashboard/{engine}: reusing the history of an earlier run")
        return url, Generated(**json.loads(summary.read_text()))
    summary.unlink(missing_ok=True)
    url = common.create_database(engine, DATABASE)
    profile = Profile().scaled(options.scale) if options.scale != 1.0 else Profile()
    common.log(f"dashboard/{engine}: generating the history")
    generated = generate(url, profile, quiet=not options.progress)
    common.vacuum_analyze(url)
    summary.write_text(json.dumps(asdict(generated)))
    common.log(
        f"  {generated.clicks:,} clicks, {generated.customers:,} customers, {generated.purchases:,} purchases, "
        f"{generated.commissions:,} commissions, {generated.entries:,} ledger entries in {generated.seconds} s"
    )
    return url, generated


# --- the recount ---------------------------------------------------------------------------------------


def days_to_today(days: int) -> tuple[datetime, datetime]:
    """The `days` UTC days ending with today, as [start, end)."""
    today = datetime.now(UTC).date()
    start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)
    return start, datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


def recount(url: str, partner_id: int, days: int, progress_days: int) -> dict[str, Any]:
    """The dashboard's headline numbers and its tier progress straight from the raw tables, for a period ending
    today."""
    start, end = days_to_today(days)
    window = {"partner": partner_id, "start": start, "end": end}
    progress_start, _ = days_to_today(progress_days)
    queries = {
        "clicks": "SELECT count(*) FROM clicks WHERE partner_id = :partner AND NOT is_bot "
        "AND occurred_at >= :start AND occurred_at < :end",
        "bot_clicks": "SELECT count(*) FROM clicks WHERE partner_id = :partner AND is_bot "
        "AND occurred_at >= :start AND occurred_at < :end",
        "unique_clicks": "SELECT count(DISTINCT ip_hash) FROM clicks WHERE partner_id = :partner AND NOT is_bot "
        "AND occurred_at >= :start AND occurred_at < :end",
        "signups": "SELECT count(*) FROM customers WHERE partner_id = :partner "
        "AND attributed_at >= :start AND attributed_at < :end",
        "customers": "SELECT count(DISTINCT customer_id) FROM purchases WHERE partner_id = :partner "
        "AND occurred_at >= :start AND occurred_at < :end AND refunded_amount < amount",
    }
    progress = {
        "revenue": "SELECT coalesce(sum(p.amount - p.refunded_amount), 0) FROM purchases p "
        "JOIN partners a ON a.id = p.partner_id JOIN programs g ON g.id = a.program_id "
        "WHERE p.partner_id = :partner AND p.currency = g.currency AND p.occurred_at >= :start "
        "AND p.occurred_at < :end",
        "active_customers": queries["customers"],
    }
    engine = common.sync_engine(url)
    with engine.connect() as conn:
        found: dict[str, Any] = {
            name: int(conn.execute(sa.text(query), window).scalar_one()) for name, query in queries.items()
        }
        revenue = conn.execute(
            sa.text(
                "SELECT currency, count(*), sum(amount), sum(refunded_amount) FROM purchases "
                "WHERE partner_id = :partner AND occurred_at >= :start AND occurred_at < :end "
                "GROUP BY currency ORDER BY currency"
            ),
            window,
        )
        found["revenue"] = [[c, int(n), int(g), int(r)] for c, n, g, r in revenue.all()]
        commissions = conn.execute(
            sa.text(
                "SELECT c.status, c.currency, count(*), sum(c.amount), sum(c.reversed_amount) FROM commissions c "
                "JOIN purchases p ON p.id = c.purchase_id WHERE c.partner_id = :partner "
                "AND p.occurred_at >= :start AND p.occurred_at < :end GROUP BY c.status, c.currency "
                "ORDER BY c.status, c.currency"
            ),
            window,
        )
        found["commissions"] = [[s, c, int(n), int(a), int(r)] for s, c, n, a, r in commissions.all()]
        found["progress"] = {
            name: int(conn.execute(sa.text(query), {**window, "start": progress_start}).scalar_one())
            for name, query in progress.items()
        }
    engine.dispose()
    return found


def answered(body: dict[str, Any]) -> dict[str, Any]:
    """The same numbers from the API's answer."""
    found = {name: body[name] for name in ("clicks", "bot_clicks", "unique_clicks", "signups", "customers")}
    found["revenue"] = [[r["currency"], r["purchases"], r["gross"], r["refunded"]] for r in body["revenue"]]
    found["commissions"] = [
        [c["status"], c["currency"], c["count"], c["amount"], c["reversed"]] for c in body["commissions"]
    ]
    found["progress"] = {
        r["metric"]: r["current"] for r in body["progress"]["requirements"] if r["metric"] != "referrals"
    }
    return found


def check(url: str, base_url: str, tokens: Credentials, partner_id: int) -> dict[str, Any]:
    checks: dict[str, Any] = {}
    for period in PERIODS:
        response = httpx.get(
            f"{base_url}/affiliate/dashboard?period={period}",
            headers={"Authorization": f"Bearer {tokens.partner_token}"},
            timeout=120,
        )
        response.raise_for_status()
        body = response.json()
        api, raw = answered(body), recount(url, partner_id, int(period[:-1]), body["progress"]["window_days"])
        checks[period] = {
            "matches_recount": api == raw,
            "differences": {key: [api[key], raw[key]] for key in api if api[key] != raw[key]},
        }
    return checks


# --- the run -------------------------------------------------------------------------------------------


def run_engine(engine: common.Engine, options: Options) -> dict[str, Any]:
    url, generated = history(engine, options)
    tokens = credentials(url, generated.main_partner_id)
    workers = common.WORKERS[engine]
    results: dict[str, Any] = {}
    with common.serve("partners.app:create_app", url, workers=workers, name=f"dashboard-{engine}") as server:
        checks = check(url, server.base_url, tokens, generated.main_partner_id)
        for page in pages(tokens):
            status = httpx.get(server.base_url + page.path, headers=page.headers, timeout=120).status_code
            if status != 200:
                results[page.name] = {"status": status}
                common.log(f"  {page.name}: HTTP {status}, not measured")
                continue
            lua = script(page)
            common.wrk(server.base_url, lua, connections=CONNECTIONS, seconds=options.warmup, threads=1)
            with options.profiler(server, f"dashboard-{engine}-{page.path.strip('/').replace('/', '-')}"):
                result = common.wrk(server.base_url, lua, connections=CONNECTIONS, seconds=options.seconds, threads=1)
            results[page.name] = result
            common.log(f"  {page.name}: p50 {result.p50_ms} ms, p95 {result.p95_ms} ms ({result.requests} requests)")
    return {
        "engine": engine,
        "workers": workers,
        "history": {key: value for key, value in asdict(generated).items() if not isinstance(value, list)},
        "results": results,
        "checks": checks,
    }


def run(options: Options) -> dict[str, Any]:
    engines = {engine: run_engine(engine, options) for engine in options.engines}
    rows = []
    for engine, data in engines.items():
        for name, result in data["results"].items():
            if isinstance(result, common.LoadResult):
                ok = result.p95_ms < TARGET_P95_MS
                rows.append(
                    [engine, name, result.requests, result.p50_ms, result.p95_ms, result.p99_ms, common.verdict(ok)]
                )
            else:
                rows.append([engine, name, "-", "-", "-", "-", f"HTTP {result['status']}"])
    table = common.markdown_table(["engine", "page", "requests", "p50 ms", "p95 ms", "p99 ms", "p95 < 150 ms"], rows)
    lines = []
    for engine, data in engines.items():
        history_note = data["history"]
        lines.append(
            f"- {engine}: history of {history_note['clicks']:,} clicks, {history_note['customers']:,} customers, "
            f"{history_note['purchases']:,} purchases ({history_note['partners']:,} partners), generated in "
            f"{history_note['seconds']} s"
        )
        for period, found in data["checks"].items():
            verdict = (
                "matches the recount" if found["matches_recount"] else f"DIFFERS: {json.dumps(found['differences'])}"
            )
            lines.append(f"- {engine}: dashboard {period} {verdict}")
    table = "### Partner dashboard\n\n" + table + "\n\n" + "\n".join(lines)
    data = {"settings": asdict(options.settings()), "engines": engines}
    common.write_results("dashboard", data, table)
    return data
