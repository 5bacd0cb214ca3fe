"""Browser tests: a real uvicorn server (SQLite, the demo data, the demo shop on) on 127.0.0.1:<free port>,
driven by Playwright with Debian's Chromium (/usr/bin/chromium; never `playwright install`).

The server runs in a subprocess with its own environment, exactly as `partners serve` would, so its job
worker (emails to files, payout batches) reads the same settings. Without /usr/bin/chromium the browser tests
are skipped, except under CI=true, where that is a failure (`make test` installs it).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from partners.db.base import Base
from partners.db.engine import create_engine
from partners.db.session import Database
from partners.demo import load_demo_data
from partners.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SECRET = "browser-tests-secret-0123456789"
STARTUP_SECONDS = 60
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Headless Chromium says "HeadlessChrome", which the click recorder rightly counts as a bot.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"


@dataclass(frozen=True)
class LiveServer:
    url: str
    mail_dir: Path
    database_url: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(database_url: str, base_url: str, mail_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PARTNERS_")}
    env.update(
        DATABASE_URL=database_url,
        SECRET_KEY=SECRET,
        PARTNERS_ENV="development",
        PARTNERS_BASE_URL=base_url,
        PARTNERS_EMBEDDED_WORKER="true",
        PARTNERS_EMAIL_BACKEND="file",
        PARTNERS_EMAIL_DIR=str(mail_dir),
        PARTNERS_CLICK_JOURNAL_DIR=str(mail_dir.parent / "clicks"),
        PAYOUT_MINIMUM_AMOUNT="1.00",
        PARTNERS_ARGON2_TIME_COST="1",
        PARTNERS_ARGON2_MEMORY_KIB="1024",
        LOG_LEVEL="WARNING",
    )
    return env


def _seed(database_url: str, base_url: str) -> None:
    path = database_url.split("///", 1)[1]
    engine = sa.create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    settings = Settings(DATABASE_URL=database_url, SECRET_KEY=SECRET, PARTNERS_BASE_URL=base_url)  # type: ignore[call-arg]

    async def load() -> None:
        database = Database(create_engine(database_url))
        try:
            await load_demo_data(database, settings)
        finally:
            await database.dispose()

    # In a thread of its own: Playwright's sync API may already run an event loop in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, load()).result()


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not start within {STARTUP_SECONDS} s")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is required under CI=true: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory, chromium_path: str) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("live")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    database_url = f"sqlite+aiosqlite:///{folder / 'partners.db'}"
    mail_dir = folder / "mail"
    _seed(database_url, url)
    log = (folder / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "partners.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env=_environment(database_url, url, mail_dir),
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_until_up(url, process)
        yield LiveServer(url, mail_dir, database_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """Module-scoped: Playwright's sync API runs an event loop, which must be gone before async tests run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def _new_page(browser: Any, live_server: LiveServer, viewport: dict[str, int]) -> Any:
    context = browser.new_context(base_url=live_server.url, viewport=viewport, user_agent=USER_AGENT)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm prompts
    return page


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh desktop browser context (no cookies) on the live server."""
    opened = _new_page(browser, live_server, DESKTOP)
    yield opened
    opened.context.close()


@pytest.fixture
def new_page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """Open more browser contexts (another person at another computer): new_page(viewport=...)."""
    opened: list[Any] = []

    def make(viewport: dict[str, int] | None = None) -> Any:
        made = _new_page(browser, live_server, viewport or DESKTOP)
        opened.append(made)
        return made

    yield make
    for made in opened:
        made.context.close()
