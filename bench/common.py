"""What every benchmark shares: the bench database, the server process, wrk, pgbench and the result files.

The server is started the way production runs it (`uvicorn partners.app:create_app --factory`, uvloop and
httptools, no access log, proxy headers) in its own process group; load comes from wrk in another process,
on loopback only. Every run is bounded in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from partners.db.base import Base
from partners.db.registry import load_all_models

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
DATA = ROOT / "var" / "bench"
PYTHON = sys.executable

Engine = Literal["postgresql", "sqlite"]
ENGINES: tuple[Engine, ...] = ("postgresql", "sqlite")
PG_URL = os.environ.get("PARTNERS_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/partners_bench")
SECRET_KEY = "bench-secret-key-0123456789abcdef"
HOST = "127.0.0.1"
# Server processes per engine: one per core on PostgreSQL; SQLite is the embedded, one-process setup.
WORKERS: dict[Engine, int] = {"postgresql": 2, "sqlite": 1}


def log(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


# --- the bench database ----------------------------------------------------------------------------------


def database_url(engine: Engine, name: str = "partners_bench") -> str:
    """The async URL the server uses for this engine."""
    if engine == "postgresql":
        return make_url(PG_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(False)
    return f"sqlite+aiosqlite:///{DATA / (name + '.db')}"


def sync_url(url: str) -> str:
    parsed = make_url(url)
    driver = "postgresql+psycopg" if parsed.get_backend_name() == "postgresql" else "sqlite"
    return parsed.set(drivername=driver).render_as_string(False)


def libpq_url(url: str) -> str:
    """postgresql://... for psql, pgbench and psycopg.connect."""
    return make_url(url).set(drivername="postgresql").render_as_string(False)


def create_database(engine: Engine, name: str = "partners_bench") -> str:
    """A fresh, empty database with the whole schema (from the models, like the tests). Returns its URL."""
    load_all_models()
    url = database_url(engine, name)
    DATA.mkdir(parents=True, exist_ok=True)  # the history's summary is written there for both engines
    if engine == "postgresql":
        admin = sa.create_engine(
            make_url(sync_url(url)).set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{DATA / name}.db{suffix}").unlink(missing_ok=True)
    schema = sa.create_engine(sync_url(url), poolclass=NullPool)
    with schema.begin() as conn:
        Base.metadata.create_all(conn)
    schema.dispose()
    return url


def sync_engine(url: str) -> sa.Engine:
    return sa.create_engine(sync_url(url), poolclass=NullPool)


def scalar(url: str, query: str, **params: Any) -> Any:
    engine = sync_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query), params).scalar()
    finally:
        engine.dispose()


def vacuum_analyze(url: str) -> None:
    """What autovacuum would have done to a table loaded long ago: statistics and the visibility map."""
    engine = sa.create_engine(sync_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    engine.dispose()


# --- the server ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path


def server_env(url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PARTNERS_", "DATABASE_"))}
    env.update(
        DATABASE_URL=url,
        SECRET_KEY=SECRET_KEY,
        PARTNERS_ENV="production",
        PARTNERS_BASE_URL="http://127.0.0.1",
        # Production runs `partners worker` processes beside the API; the benchmarks measure the API alone.
        PARTNERS_EMBEDDED_WORKER="false",
        PYTHONPATH=os.pathsep.join((str(ROOT / "src"), str(ROOT))),  # this checkout's code, whatever is installed
    )
    return env


@contextlib.contextmanager
def serve(app: str, url: str, *, workers: int, name: str) -> Iterator[Server]:
    """Run `uvicorn <app> --factory` with the production settings; stop it (gracefully) on exit."""
    port = free_port()
    DATA.mkdir(parents=True, exist_ok=True)
    log_path = DATA / f"server-{name}.log"
    # A click journal of its own, empty: a server killed in an earlier run left clicks of a database since dropped.
    journal = DATA / f"clicks-{name}"
    shutil.rmtree(journal, ignore_errors=True)
    command = [
        PYTHON,
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--proxy-headers",
        "--log-level",
        "warning",
    ]
    with log_path.open("wb") as output:
        process = subprocess.Popen(
            command,
            env={**server_env(url), "PARTNERS_CLICK_JOURNAL_DIR": str(journal)},
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        server = Server(f"http://{HOST}:{port}", process, log_path)
        try:
            _wait_until_up(server)
            yield server
        finally:
            stop(server)


def _wait_until_up(server: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited at start-up: see {server.log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.base_url + "/health", timeout=1.0).status_code == 200:
                time.sleep(0.5 if server.process.args and "--workers" in str(server.process.args) else 0)
                return
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s: see {server.log_path}")


def stop(server: Server, timeout: float = 30.0) -> None:
    """SIGTERM to the process group: uvicorn runs the lifespan shutdown (the click recorder's last flush)."""
    if server.process.poll() is not None:
        return
    os.killpg(server.process.pid, signal.SIGTERM)
    try:
        server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        raise RuntimeError(f"the server did not stop within {timeout:.0f} s") from None


def server_pids(server: Server) -> list[int]:
    """The uvicorn processes serving requests (the workers, or the one process)."""
    found = subprocess.run(
        ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    children = [int(pid) for pid in found]
    return [pid for pid in children if _is_python(pid)] or [server.process.pid]


def _is_python(pid: int) -> bool:
    try:
        return "python" in Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return False


# --- wrk -------------------------------------------------------------------------------------------------

WRK_REPORT = """
done = function(summary, latency, requests)
  local out = io.open(os.getenv("WRK_REPORT"), "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d}}',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status,
    summary.errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
  out:close()
end
"""


@dataclass
class LoadResult:
    """One load run: completed responses, throughput and latency in milliseconds."""

    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.errors.values())


def _lua(body: str) -> Path:
    handle, path = tempfile.mkstemp(prefix="wrk-", suffix=".lua", dir=DATA)
    with os.fdopen(handle, "w") as script:
        script.write(body + "\n" + WRK_REPORT)
    return Path(path)


@dataclass
class Wrk:
    """A wrk run, started with `start()` (so several can run at once) and read with `result()`."""

    url: str
    script: str
    connections: int
    seconds: float
    threads: int = 2
    timeout_s: float = 10.0
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    report: Path | None = None
    lua: Path | None = None

    def start(self) -> Wrk:
        DATA.mkdir(parents=True, exist_ok=True)
        self.lua = _lua(self.script)
        handle, report = tempfile.mkstemp(prefix="wrk-", suffix=".json", dir=DATA)
        os.close(handle)
        self.report = Path(report)
        threads = max(1, min(self.threads, self.connections))
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{self.connections}",
            f"-d{max(1, round(self.seconds))}s",
            f"--timeout={max(1, round(self.timeout_s))}s",
            "-s",
            str(self.lua),
            self.url,
        ]
        env = {**os.environ, **self.env, "WRK_REPORT": str(self.report)}
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return self

    def result(self) -> LoadResult:
        assert self.process is not None and self.report is not None and self.lua is not None
        output, _ = self.process.communicate(timeout=self.seconds + 120)
        if self.process.returncode != 0:
            raise RuntimeError(f"wrk failed: {output.decode(errors='replace')}")
        data = json.loads(self.report.read_text())
        self.report.unlink()
        self.lua.unlink()
        seconds = data["duration_us"] / 1e6
        latency = data["latency_us"]
        return LoadResult(
            connections=self.connections,
            seconds=round(seconds, 2),
            requests=data["requests"],
            rps=round(data["requests"] / seconds, 1),
            p50_ms=latency["p50"] / 1000,
            p95_ms=latency["p95"] / 1000,
            p99_ms=latency["p99"] / 1000,
            max_ms=latency["max"] / 1000,
            mean_ms=round(latency["mean"] / 1000, 3),
            errors={key: value for key, value in data["errors"].items() if value},
        )


def require_tools() -> None:
    """wrk drives the HTTP load, pgbench the stored-procedure baseline (Debian: wrk, postgresql-client)."""
    missing = [tool for tool in ("wrk", "pgbench") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: apt-get install -y wrk postgresql-client")


def wrk(url: str, script: str, *, connections: int, seconds: float, threads: int = 2) -> LoadResult:
    return Wrk(url, script, connections, seconds, threads).start().result()


def lua_string_list(values: Sequence[str]) -> str:
    return "{" + ", ".join(json.dumps(value) for value in values) + "}"


# --- results ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1) if match else ""
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def ratio(value: float, baseline: float) -> float:
    return round(value / baseline, 3) if baseline else 0.0


def write_results(name: str, data: dict[str, Any], table: str) -> None:
    """bench/results/<name>.json and <name>.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    (RESULTS / f"{name}.md").write_text(table.rstrip() + "\n")
    log(f"wrote bench/results/{name}.json and .md")
    print(table, flush=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, LoadResult):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
