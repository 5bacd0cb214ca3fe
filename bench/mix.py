"""4. The API mix at 100 concurrent clients on the large history: 25 each on the partner dashboard, the
commissions list, the links list (the main partner's) and purchase events (other partners' customers), all at
once, each client sending its next request as soon as the last is answered. p99 per endpoint.

With no pause between requests, 100 clients keep the server saturated: by Little's law each waits 100 / (the
server's requests per second) on average, so the p99 target there is a throughput target (~2,000 req/s for 50 ms).
The same clients are then run pausing between requests (a random pause, exponential: people and polling
integrations) at a quarter, a half and three quarters of the saturated throughput: the latency a deployment of
this size gives below its capacity, and how much of its capacity it can use within the target."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import httpx

from bench import common, cpu, dashboard
from bench.generate import credentials
from bench.options import Options
from bench.purchase import script as purchase_script

CLIENTS_EACH = 25
ALONE_CLIENTS = 8  # each endpoint on its own, before the mix
TARGET_P99_MS = 50.0
LOAD_SHARES = (0.25, 0.5, 0.75)  # of the saturated throughput
# Between the saturated run and the paced ones: the database finishes the writes the saturated run queued, so the
# first paced run does not measure their tail.
SETTLE_SECONDS = 5.0


def get_script(path: str, headers: dict[str, str]) -> str:
    values = ", ".join(f'["{name}"] = "{value}"' for name, value in headers.items())
    return f"""
local headers = {{{values}}}
request = function()
  return wrk.format("GET", "{path}", headers)
end
"""


def paced(lua: str, think_ms: float) -> str:
    """The script with a random pause before each request: exponential with mean `think_ms` (wrk's `delay`)."""
    return (
        lua
        + f"""
delay = function()
  return math.floor(-math.log(1 - math.random()) * {think_ms:.1f})
end
"""
    )


def think_ms(share: float, saturated_rps: float, clients: int) -> float:
    """The mean pause that makes `clients` clients offer `share` of the saturated throughput (their answers' own
    time left out: the rate reached is a little lower)."""
    return clients / (share * saturated_rps) * 1000


def below_saturation(
    server: common.Server, scripts: Callable[[str], dict[str, str]], saturated_rps: float, seconds: float
) -> list[dict[str, Any]]:
    """The mix again with the clients pausing between requests, at each of `LOAD_SHARES`."""
    below = []
    for share in LOAD_SHARES:
        endpoints = scripts(f"paced-{secrets.token_hex(3)}")
        pause = think_ms(share, saturated_rps, CLIENTS_EACH * len(endpoints))
        runs = {
            name: common.Wrk(server.base_url, paced(lua, pause), CLIENTS_EACH, seconds, threads=1).start()
            for name, lua in endpoints.items()
        }
        results = {name: run.result() for name, run in runs.items()}
        worst = max(result.p99_ms for result in results.values())
        rps = sum(result.rps for result in results.values())
        common.log(
            f"  {share:.0%} of {saturated_rps:,.0f} req/s (pause {pause:,.0f} ms): {rps:,.0f} req/s, p99 ≤ {worst} ms"
        )
        below.append({"share": share, "think_ms": round(pause, 1), "results": results})
    return below


def alone(server: common.Server, engine: common.Engine, endpoints: dict[str, str], seconds: float) -> dict[str, Any]:
    """Each endpoint on its own (`ALONE_CLIENTS` clients): its throughput and CPU per request by process kind —
    what each one costs, which the mix's one figure for all of them cannot tell."""
    measured: dict[str, Any] = {}
    for name, lua in endpoints.items():
        with cpu.Meter(common.server_pids(server), postgres=engine == "postgresql") as meter:
            result = common.wrk(server.base_url, lua, connections=ALONE_CLIENTS, seconds=seconds, threads=1)
        spent = meter.per_operation(result.requests)
        measured[name] = {"result": result, "cpu_per_request": spent}
        common.log(f"  alone, {name}: {result.rps:,.0f} req/s, {cpu.describe(spent, 'wrk')}")
    return measured


def run_engine(engine: common.Engine, options: Options) -> dict[str, Any]:
    url, generated = dashboard.history(engine, dataclasses.replace(options, reuse_history=True))
    tokens = credentials(url, generated.main_partner_id)
    bearer = {"Authorization": f"Bearer {tokens.partner_token}"}
    others = [int(customer.removeprefix("c-")) for customer in generated.other_customer_ids]

    def scripts(prefix: str) -> dict[str, str]:
        purchases = purchase_script(tokens.api_key, prefix, max(others))
        return {
            "GET /affiliate/dashboard": get_script("/affiliate/dashboard", bearer),
            "GET /affiliate/commissions": get_script("/affiliate/commissions", bearer),
            "GET /affiliate/links": get_script("/affiliate/links", bearer),
            "POST /events/purchase": purchases.replace("math.random(1, ", f"math.random({min(others)}, "),
        }

    workers = common.WORKERS[engine]
    common.log(f"mix/{engine}: 4 x {CLIENTS_EACH} clients, {workers} worker(s)")
    with common.serve("partners.app:create_app", url, workers=workers, name=f"mix-{engine}") as server:
        for name, lua in scripts(f"warm-{secrets.token_hex(3)}").items():
            path = name.split(" ", 1)[1]
            if name.startswith("GET"):
                status = httpx.get(server.base_url + path, headers=bearer, timeout=120).status_code
                if status != 200:
                    raise RuntimeError(f"{name} answered {status}")
            common.wrk(server.base_url, lua, connections=2, seconds=options.warmup, threads=1)
        each_alone = alone(server, engine, scripts(f"alone-{secrets.token_hex(3)}"), options.seconds / 2)
        runs = {
            name: common.Wrk(server.base_url, lua, CLIENTS_EACH, options.seconds * 2, threads=1).start()
            for name, lua in scripts(f"mix-{secrets.token_hex(3)}").items()
        }
        meter = cpu.Meter(common.server_pids(server), postgres=engine == "postgresql")
        with options.profiler(server, f"mix-{engine}", options.seconds * 2), meter:
            results = {name: run.result() for name, run in runs.items()}
        cpu_per_request = meter.per_operation(sum(result.requests for result in results.values()))
        for name, result in results.items():
            common.log(f"  {name}: {result.rps:,.0f} req/s, p50 {result.p50_ms} ms, p99 {result.p99_ms} ms")
        common.log(f"  CPU per request: {cpu.describe(cpu_per_request, 'wrk')}")
        time.sleep(SETTLE_SECONDS)
        below = below_saturation(server, scripts, sum(result.rps for result in results.values()), options.seconds * 2)
    return {
        "engine": engine,
        "workers": workers,
        "clients_each": CLIENTS_EACH,
        "results": results,
        "cpu_per_request": cpu_per_request,  # the saturated run's, all endpoints together (bench/cpu.py)
        "alone": each_alone,
        "below": below,
    }


def _alone_table(engines: dict[common.Engine, dict[str, Any]]) -> str:
    rows = []
    for engine, data in engines.items():
        for name, measured in data["alone"].items():
            result: common.LoadResult = measured["result"]
            spent = [measured["cpu_per_request"][key] for key in ("workers_ms", "postgres_ms")]
            micros = ["—" if ms is None else round(ms * 1000) for ms in spent]  # SQLite: no database process
            rows.append([engine, name, result.rps, result.p99_ms, *micros])
    heading = ["engine", "endpoint", "req/s", "p99 ms", "workers µs/request", "PostgreSQL µs/request"]
    return (
        f"#### Each endpoint alone ({ALONE_CLIENTS} clients, the same server, before the mix): what a request costs"
        "\n\n" + common.markdown_table(heading, rows)
    )


def _below_table(engines: dict[common.Engine, dict[str, Any]]) -> str:
    rows = []
    for engine, data in engines.items():
        for run in data["below"]:
            results: dict[str, common.LoadResult] = run["results"]
            worst = max(result.p99_ms for result in results.values())
            rows.append(
                [
                    engine,
                    f"{run['share']:.0%}",
                    run["think_ms"],
                    round(sum(result.rps for result in results.values()), 1),
                    *(result.p99_ms for result in results.values()),
                    "within" if worst < TARGET_P99_MS else "over",
                ]
            )
    endpoints = [f"{name.split(' /', 1)[1]} p99 ms" for name in next(iter(engines.values()))["results"]]
    heading = ["engine", "load", "mean pause ms", "req/s", *endpoints, "p99 < 50 ms"]
    return (
        "#### Below saturation (the same 100 clients pausing between requests; load: share of the saturated req/s)"
        "\n\n" + common.markdown_table(heading, rows)
    )


def run(options: Options) -> dict[str, Any]:
    engines = {engine: run_engine(engine, options) for engine in options.engines}
    rows = []
    for engine, data in engines.items():
        results: dict[str, common.LoadResult] = data["results"]
        for name, result in results.items():
            rows.append(
                [
                    engine,
                    name,
                    result.rps,
                    result.p50_ms,
                    result.p95_ms,
                    result.p99_ms,
                    result.failed,
                    common.verdict(result.requests > 0 and result.p99_ms < TARGET_P99_MS)
                    if result.requests
                    else "MISSED (no answer)",
                ]
            )
        total = sum(result.rps for result in results.values())
        rows.append([engine, "all (100 clients)", round(total, 1), "", "", "", "", ""])
    table = common.markdown_table(
        ["engine", "endpoint", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "p99 < 50 ms"], rows
    )
    spent = "\n".join(
        f"- {engine}, CPU per request (all four endpoints): {cpu.describe(data['cpu_per_request'], 'wrk')}"
        for engine, data in engines.items()
    )
    table = "\n\n".join(
        ["### API mix (100 concurrent clients)", table, spent, _alone_table(engines), _below_table(engines)]
    )
    data = {"settings": asdict(options.settings()), "engines": engines}
    common.write_results("mix", data, table)
    return data
