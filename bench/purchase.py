"""2. Purchase events `POST /events/purchase` for customers with a 3-level chain, at 8, 32 and 128 concurrent
clients, against pgbench running the same writes as one stored-procedure call per event (bench/sql/): the
ratio's baseline writes the dashboard's rollups too, as the application does; the baseline of rounds 1 to 4
(without them) is run beside it for comparison. Afterwards the ledger must sum to zero, every purchase must have
its three commissions, and the rollups must equal a recount from the raw tables."""

from __future__ import annotations

import asyncio
import re
import secrets
import statistics
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import common, cpu, generate
from bench.options import Options
from bench.seed import seed_chains
from partners.db.engine import create_engine
from partners.db.session import Database
from partners.rollups import service as rollups

CLIENTS = (8, 32, 128)
BATCHED_CLIENTS = 32
PER_REQUEST = 10  # purchases per request of the batch endpoint's run
CUSTOMERS = 5_000
CHAINS = 50
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
SQL = common.BENCH / "sql" / "purchase.sql"
PGBENCH_SCRIPT = (
    "\\set c random(1, {customers})\n\\set amount random(500, 20500)\nSELECT bench_purchase(:c, :amount, {rollups});\n"
)


def script(api_key: str, prefix: str, customers: int, per_request: int = 1) -> str:
    """wrk's Lua: one purchase per request to `POST /events/purchase`, or `per_request` of them to
    `POST /events/purchases`."""
    path = "/events/purchase" if per_request == 1 else "/events/purchases"
    return f"""
local prefix = "{prefix}"
local counter = 0
local next_thread = 1
local seeded = false
local headers = {{["Content-Type"] = "application/json", ["X-API-Key"] = "{api_key}"}}
setup = function(thread)
  thread:set("thread_number", next_thread)
  next_thread = next_thread + 1
end
request = function()
  if not seeded then
    math.randomseed(thread_number * 7919 + os.time())
    seeded = true
  end
  local events = {{}}
  for i = 1, {per_request} do
    counter = counter + 1
    events[i] = string.format(
      '{{"external_id":"%s-%d-%d","customer":"c-%d","amount":%d,"currency":"USD","product":"sms"}}',
      prefix, thread_number, counter, math.random(1, {customers}), math.random(500, 20500))
  end
  local body = events[1]
  if {per_request} > 1 then
    body = '{{"events":[' .. table.concat(events, ",") .. ']}}'
  end
  return wrk.format("POST", "{path}", headers, body)
end
"""


# --- pgbench -------------------------------------------------------------------------------------------


def install_procedure(url: str) -> None:
    engine = common.sync_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(SQL.read_text())
    engine.dispose()


def connection_room(url: str) -> int:
    """How many more connections PostgreSQL accepts now (max_connections less those in use and reserved)."""
    engine = common.sync_engine(url)
    with engine.connect() as conn:
        limit = int(conn.execute(sa.text("SHOW max_connections")).scalar_one())
        reserved = int(conn.execute(sa.text("SHOW superuser_reserved_connections")).scalar_one())
        used = int(conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity")).scalar_one())
    engine.dispose()
    return limit - reserved - used - 2


def pgbench(url: str, clients: int, seconds: float, *, rollups: bool = True) -> common.LoadResult:
    """pgbench -M prepared with the one-call script; latency percentiles from its per-transaction log."""
    with tempfile.TemporaryDirectory(dir=common.DATA) as folder:
        script_path = Path(folder) / "purchase.pgbench"
        script_path.write_text(PGBENCH_SCRIPT.format(customers=CUSTOMERS, rollups=str(rollups).lower()))
        command = [
            "pgbench",
            "-n",
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            "2",
            "-T",
            str(int(seconds)),
            "-f",
            str(script_path),
            "-l",
            "--log-prefix",
            str(Path(folder) / "log"),
            common.libpq_url(url),
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 120).stdout
        latencies = sorted(
            int(line.split()[2]) for log in Path(folder).glob("log*") for line in log.read_text().splitlines()
        )
    tps = re.search(r"tps = ([\d.]+)", output)
    failed = re.search(r"number of failed transactions: (\d+)", output)
    return common.LoadResult(
        connections=clients,
        seconds=seconds,
        requests=len(latencies),
        rps=round(float(tps.group(1)), 1) if tps else 0.0,
        p50_ms=_percentile(latencies, 50),
        p95_ms=_percentile(latencies, 95),
        p99_ms=_percentile(latencies, 99),
        max_ms=latencies[-1] / 1000 if latencies else 0.0,
        mean_ms=round(statistics.fmean(latencies) / 1000, 3) if latencies else 0.0,
        errors={"failed": int(failed.group(1))} if failed and int(failed.group(1)) else {},
    )


def _percentile(sorted_us: list[int], percent: float) -> float:
    if not sorted_us:
        return 0.0
    index = min(len(sorted_us) - 1, round(percent / 100 * (len(sorted_us) - 1)))
    return sorted_us[index] / 1000


# --- checks --------------------------------------------------------------------------------------------

CHECKS = {
    "ledger_sum_per_currency_not_zero": (
        "SELECT count(*) FROM (SELECT currency FROM ledger_entries GROUP BY currency HAVING sum(amount) <> 0) s"
    ),
    "unbalanced_transactions": (
        "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries "
        "GROUP BY transaction_id, currency HAVING sum(amount) <> 0) s"
    ),
    "purchases_without_3_commissions": (
        "SELECT count(*) FROM purchases p WHERE (SELECT count(*) FROM commissions c WHERE c.purchase_id = p.id) <> 3"
    ),
    "commissions_not_in_ledger": (
        "SELECT count(*) FROM purchases p WHERE (SELECT coalesce(sum(c.amount), 0) FROM commissions c "
        "WHERE c.purchase_id = p.id) <> (SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e "
        "JOIN ledger_transactions t ON t.id = e.transaction_id "
        "WHERE t.idempotency_key = 'purchase:' || p.id || '\\:commissions' AND e.amount > 0)"
    ),
    "balances_not_sum_of_entries": (
        "SELECT count(*) FROM ledger_accounts a WHERE NOT a.kept_as_sum AND a.posted <> "
        "(SELECT coalesce(sum(e.amount), 0) FROM ledger_entries e WHERE e.account_id = a.id)"
    ),
    "events_without_answer": "SELECT count(*) FROM host_events WHERE status_code <> 201",
}


async def rollup_rows_off(url: str) -> int:
    """How many rollup rows differ from a recount from the raw tables (stored but not recounted, and back).
    Checked after the application's and the baseline's runs at each level, before the run without rollups
    (whose purchases they leave out: rebuilt after it)."""
    database = Database(create_engine(url))
    try:
        async with database.read() as session:
            found = await rollups.stored_and_recounted(session)
    finally:
        await database.dispose()
    return sum(len(stored ^ recounted) for stored, recounted in found.values())


def verify(url: str) -> dict[str, int]:
    engine = common.sync_engine(url)
    with engine.connect() as conn:
        found = {name: int(conn.execute(sa.text(query)).scalar_one()) for name, query in CHECKS.items()}
        found["purchases"] = int(conn.execute(sa.text("SELECT count(*) FROM purchases")).scalar_one())
        found["commissions"] = int(conn.execute(sa.text("SELECT count(*) FROM commissions")).scalar_one())
    engine.dispose()
    found["rollup_rows_not_recounted"] = asyncio.run(rollup_rows_off(url))
    return found


# --- the run -------------------------------------------------------------------------------------------


def _created(result: common.LoadResult) -> int:
    return result.requests - result.errors.get("status", 0)


def run_engine(engine: common.Engine, options: Options) -> dict[str, Any]:
    url = common.create_database(engine)
    seed_chains(url, chains=CHAINS, customers=CUSTOMERS)
    api_key = generate.credentials(url).api_key
    workers = common.WORKERS[engine]
    if engine == "postgresql":
        install_procedure(url)
    app: dict[int, common.LoadResult] = {}
    baseline: dict[int, common.LoadResult] = {}
    app_cpu: dict[int, dict[str, Any]] = {}  # CPU per event by process kind (bench/cpu.py)
    baseline_cpu: dict[int, dict[str, Any]] = {}
    without_rollups: dict[int, common.LoadResult] = {}
    rollups_off = 0
    notes: list[str] = []
    common.log(f"purchase/{engine}: {workers} worker(s)")
    with common.serve("partners.app:create_app", url, workers=workers, name=f"purchase-{engine}") as server:
        common.wrk(server.base_url, script(api_key, "warm", CUSTOMERS), connections=8, seconds=options.warmup)
        if engine == "postgresql":
            pgbench(url, 8, options.warmup)
        for clients in CLIENTS:
            lua = script(api_key, f"run{clients}-{secrets.token_hex(3)}", CUSTOMERS)
            meter = cpu.Meter(common.server_pids(server), postgres=engine == "postgresql")
            with options.profiler(server, f"purchase-{engine}-{clients}"), meter:
                app[clients] = common.wrk(server.base_url, lua, connections=clients, seconds=options.seconds)
            app_cpu[clients] = meter.per_operation(app[clients].requests)
            common.log(f"  app @{clients}: {app[clients].rps:,.0f} events/s, p99 {app[clients].p99_ms} ms")
            if engine == "postgresql":
                room = connection_room(url)
                if room < clients:
                    notes.append(
                        f"pgbench @{clients} ran with {room} clients: max_connections leaves no more "
                        "(raise it to run 128 real connections)"
                    )
                with cpu.Meter() as meter:
                    baseline[clients] = pgbench(url, min(clients, room), options.seconds)
                baseline_cpu[clients] = meter.per_operation(baseline[clients].requests)
                rollups_off += asyncio.run(rollup_rows_off(url))
                without_rollups[clients] = pgbench(url, min(clients, room), options.seconds, rollups=False)
                asyncio.run(generate.rebuild_rollups(url))  # what the run without them left out
                common.log(
                    f"  pgbench @{baseline[clients].connections}: {baseline[clients].rps:,.0f} tps "
                    f"({without_rollups[clients].rps:,.0f} without the rollups)"
                )
        lua = script(api_key, f"batched-{secrets.token_hex(3)}", CUSTOMERS, PER_REQUEST)
        batched = common.wrk(server.base_url, lua, connections=BATCHED_CLIENTS, seconds=options.seconds)
        common.log(
            f"  app @{BATCHED_CLIENTS} x {PER_REQUEST} per request: {batched.rps * PER_REQUEST:,.0f} events/s, "
            f"p99 {batched.p99_ms} ms"
        )
    checks = verify(url)
    checks["rollup_rows_not_recounted"] += rollups_off
    answered = sum(_created(result) for result in app.values()) + _created(batched) * PER_REQUEST
    checks["ok"] = int(all(checks[name] == 0 for name in (*CHECKS, "rollup_rows_not_recounted")))
    return {
        "engine": engine,
        "workers": workers,
        "app": app,
        "pgbench": baseline,
        "pgbench_without_rollups": without_rollups,
        "cpu_per_event": {"app": app_cpu, "pgbench": baseline_cpu},
        "batched": {"clients": BATCHED_CLIENTS, "per_request": PER_REQUEST, "requests": batched},
        "ratio": {str(c): common.ratio(app[c].rps, baseline[c].rps) for c in baseline},
        "answered_201": answered,
        "checks": checks,
        "notes": notes,
    }


def run(options: Options) -> dict[str, Any]:
    engines = {engine: run_engine(engine, options) for engine in options.engines}
    pg = engines.get("postgresql")
    rows = []
    for engine, data in engines.items():
        for clients in CLIENTS:
            result: common.LoadResult = data["app"][clients]
            base: common.LoadResult | None = pg["pgbench"].get(clients) if pg else None
            lean: common.LoadResult | None = pg["pgbench_without_rollups"].get(clients) if pg else None
            rows.append(
                [
                    engine,
                    clients,
                    base.rps if base else "-",
                    result.rps,
                    f"{common.ratio(result.rps, base.rps):.0%}" if base else "-",
                    lean.rps if lean else "-",
                    f"{common.ratio(result.rps, lean.rps):.0%}" if lean else "-",
                    result.p50_ms,
                    result.p95_ms,
                    result.p99_ms,
                    base.p99_ms if base else "-",
                    result.failed,
                ]
            )
    table = common.markdown_table(
        [
            "engine",
            "clients",
            "pgbench tps",
            "events/s",
            "ratio",
            "pgbench tps, no rollups",
            "ratio to it",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "pgbench p99 ms",
            "errors",
        ],
        rows,
    )
    lines = []
    for engine, data in engines.items():
        checks = data["checks"]
        problems = [name for name in (*CHECKS, "rollup_rows_not_recounted") if checks[name]]
        lines.append(
            f"- {engine}: {checks['purchases']:,} purchases, {checks['commissions']:,} commissions; ledger sums to "
            f"zero, every purchase has 3 commissions in the ledger, the rollups equal a recount: "
            f"{problems if problems else 'OK'}"
        )
        lines += [f"- {engine}: {note}" for note in data["notes"]]
        for clients, share in data["cpu_per_event"]["app"].items():
            line = f"- {engine} @{clients}, CPU per event: {cpu.describe(share, 'wrk')}"
            baseline_share = data["cpu_per_event"]["pgbench"].get(clients)
            if baseline_share:
                line += f"; pgbench's: {cpu.describe(baseline_share, 'pgbench')}"
            lines.append(line)
        batched = data["batched"]["requests"]
        events_per_second = batched.rps * PER_REQUEST
        base = pg["pgbench"].get(BATCHED_CLIENTS) if pg else None
        lines.append(
            f"- {engine}: `POST /events/purchases`, {PER_REQUEST} purchases per request at {BATCHED_CLIENTS} "
            f"clients: {events_per_second:,.0f} events/s"
            + (f" ({common.ratio(events_per_second, base.rps):.0%} of pgbench)" if base else "")
            + f", p50 {batched.p50_ms} ms, p99 {batched.p99_ms} ms per request, {batched.failed} errors"
        )
        if engine == "postgresql":
            ratio = data["ratio"].get("32", 0.0)
            p99 = data["app"][32].p99_ms
            lines.append(
                f"- {engine}: ratio @32 {ratio:.0%} (target ≥ 50%: {common.verdict(ratio >= TARGET_RATIO)}), "
                f"p99 @32 {p99} ms (target < 50 ms: {common.verdict(p99 < TARGET_P99_MS)})"
            )
    table = "### Purchase events\n\n" + table + "\n\n" + "\n".join(lines)
    data = {"settings": asdict(options.settings()), "engines": engines}
    common.write_results("purchase", data, table)
    return data
