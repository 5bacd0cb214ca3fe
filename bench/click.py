"""1. The click redirect `GET /r/{code}` (click recording on) against a bare Starlette 302, at 32 and 128
connections; afterwards every click answered with a 302 must be in the database."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from bench import common, cpu
from bench.options import Options
from bench.seed import seed_chains

CONNECTIONS = (32, 128)
TARGET_RATIO = 0.5
ROUNDS = 3
TARGET_P99_MS = 10.0
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def script(codes: list[str]) -> str:
    return f"""
local codes = {common.lua_string_list(codes)}
local counter = 0
local headers = {{["User-Agent"] = "{BROWSER}", ["Referer"] = "https://www.youtube.com/"}}
request = function()
  counter = counter + 1
  -- a new visitor most of the time (uvicorn trusts X-Forwarded-For from 127.0.0.1, as behind a proxy)
  headers["X-Forwarded-For"] = string.format("10.%d.%d.%d", math.random(0, 255), math.random(0, 255),
    math.random(1, 254))
  return wrk.format("GET", "/r/" .. codes[(counter % #codes) + 1], headers)
end
"""


def _answered(result: common.LoadResult) -> int:
    """Responses that were 302s: wrk counts non-2xx/3xx answers as status errors."""
    return result.requests - result.errors.get("status", 0)


def _median(results: list[common.LoadResult]) -> common.LoadResult:
    return sorted(results, key=lambda result: result.rps)[len(results) // 2]


def _stored(url: str, settle: float = 10.0) -> int:
    """Clicks in the database once the recorder has written all it holds (the count stops moving)."""
    count = int(common.scalar(url, "SELECT count(*) FROM clicks"))
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        time.sleep(0.5)
        again = int(common.scalar(url, "SELECT count(*) FROM clicks"))
        if again == count:
            return count
        count = again
    return count


def run_engine(engine: common.Engine, options: Options) -> dict[str, Any]:
    """Both servers run side by side (idle when not loaded); the runs alternate, ROUNDS times per level, so
    a slower moment of the machine hits both; the median run of each counts."""
    url = common.create_database(engine)
    seeded = seed_chains(url, chains=50, customers=10)
    lua = script(seeded.links)
    workers = common.WORKERS[engine]
    seconds = float(max(2, round(options.seconds / ROUNDS)))
    common.log(f"click/{engine}: bare Starlette 302 and /r/{{code}} with click recording, {workers} worker(s)")
    baseline: dict[int, common.LoadResult] = {}
    redirect: dict[int, common.LoadResult] = {}
    cpu_per_click: dict[int, dict[str, dict[str, Any]]] = {}  # of the median runs (bench/cpu.py)
    runs: list[common.LoadResult] = []
    with (
        common.serve("bench.baseline:create_app", url, workers=workers, name=f"baseline-{engine}") as bare,
        common.serve("partners.app:create_app", url, workers=workers, name=f"click-{engine}") as app,
    ):
        common.wrk(bare.base_url, lua, connections=32, seconds=options.warmup)
        common.wrk(app.base_url, lua, connections=32, seconds=options.warmup)
        before = _stored(url)
        for connections in CONNECTIONS:
            bare_runs, app_runs = [], []
            bare_cpu, app_cpu = [], []  # CPU per request of each run
            for _ in range(ROUNDS):
                with cpu.Meter(common.server_pids(bare), postgres=False) as meter:
                    bare_runs.append(common.wrk(bare.base_url, lua, connections=connections, seconds=seconds))
                bare_cpu.append(meter.per_operation(bare_runs[-1].requests))
                meter = cpu.Meter(common.server_pids(app), postgres=engine == "postgresql")
                with options.profiler(app, f"click-{engine}-{connections}", seconds), meter:
                    app_runs.append(common.wrk(app.base_url, lua, connections=connections, seconds=seconds))
                app_cpu.append(meter.per_operation(app_runs[-1].requests))
            baseline[connections], redirect[connections] = _median(bare_runs), _median(app_runs)
            cpu_per_click[connections] = {
                "bare": bare_cpu[bare_runs.index(baseline[connections])],
                "app": app_cpu[app_runs.index(redirect[connections])],
            }
            runs += app_runs
            common.log(
                f"  @{connections}: bare {baseline[connections].rps:,.0f} req/s, "
                f"/r/ {redirect[connections].rps:,.0f} req/s, p99 {redirect[connections].p99_ms} ms"
            )
        sent = sum(_answered(result) for result in runs)
        time.sleep(1.0)
        stored_within_a_second = int(common.scalar(url, "SELECT count(*) FROM clicks")) - before
    stored = _stored(url) - before  # after the graceful stop: the recorder's last flush
    # Requests cut off when wrk stops may have been answered (and recorded) by the server all the same: at
    # most one per connection and run, plus any wrk gave up on (timeouts).
    in_flight = sum(result.connections + result.errors.get("timeout", 0) for result in runs)
    lost = max(0, sent - stored)
    return {
        "engine": engine,
        "workers": workers,
        "rounds": ROUNDS,
        "seconds_per_run": seconds,
        "baseline": baseline,
        "redirect": redirect,
        "ratio": {str(c): common.ratio(redirect[c].rps, baseline[c].rps) for c in CONNECTIONS},
        "cpu_per_request": cpu_per_click,
        "clicks": {
            "answered_302": sent,
            "stored": stored,
            "stored_1s_after_load": stored_within_a_second,
            "lost": lost,
            "extra_in_flight_allowed": in_flight,
            "ok": lost == 0 and stored <= sent + in_flight,
        },
    }


def run(options: Options) -> dict[str, Any]:
    engines: dict[str, dict[str, Any]] = {engine: run_engine(engine, options) for engine in options.engines}
    rows = []
    for engine, data in engines.items():
        for connections in CONNECTIONS:
            base: common.LoadResult = data["baseline"][connections]
            app: common.LoadResult = data["redirect"][connections]
            rows.append(
                [
                    engine,
                    connections,
                    base.rps,
                    app.rps,
                    f"{data['ratio'][str(connections)]:.0%}",
                    app.p50_ms,
                    app.p95_ms,
                    app.p99_ms,
                    base.p99_ms,
                ]
            )
    table = common.markdown_table(
        [
            "engine",
            "conns",
            "bare 302 req/s",
            "/r/{code} req/s",
            "ratio",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "bare p99 ms",
        ],
        rows,
    )
    checks = [
        f"- {engine}: {data['clicks']['answered_302']:,} clicks answered, {data['clicks']['stored']:,} stored "
        f"({data['clicks']['stored_1s_after_load']:,} within 1 s of the load's end), lost: "
        f"{data['clicks']['lost']} → {'OK' if data['clicks']['ok'] else 'CLICKS LOST'}"
        for engine, data in engines.items()
    ]
    checks += [
        f"- {engine} @{connections}, CPU per request: /r/ {cpu.describe(shares['app'], 'wrk')}; bare 302 "
        f"{cpu.describe(shares['bare'], 'wrk')}"
        for engine, data in engines.items()
        for connections, shares in data["cpu_per_request"].items()
    ]
    targets = _targets(engines)
    table = f"### Click redirect\n\n{table}\n\n" + "\n".join(checks) + "\n\n" + targets
    data = {"settings": asdict(options.settings()), "engines": engines}
    common.write_results("click", data, table)
    return data


def _targets(engines: Mapping[str, dict[str, Any]]) -> str:
    lines = []
    for engine, data in engines.items():
        ratio_32 = data["ratio"]["32"]
        p99 = data["redirect"][32].p99_ms
        lines.append(
            f"- {engine}: ratio @32 {ratio_32:.0%} (target ≥ 50%: {common.verdict(ratio_32 >= TARGET_RATIO)}), "
            f"p99 @32 {p99} ms (target < 10 ms: {common.verdict(p99 < TARGET_P99_MS)}), zero lost: "
            f"{common.verdict(data['clicks']['ok'])}"
        )
    return "\n".join(lines)
