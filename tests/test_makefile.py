"""`make run`'s address: the links the product writes (emails, pages) point at the server it starts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def _base_url_make_exports(*arguments: str, environment: dict[str, str] | None = None) -> str:
    """PARTNERS_BASE_URL as the Makefile exports it to its commands, given these command-line variables."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in {"PARTNERS_BASE_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}  # set by a `make test` around us
    }
    shown = subprocess.run(
        [
            "make",
            "--silent",
            "--no-print-directory",
            "-C",
            str(REPO),
            *arguments,
            "--eval",
            "show-base-url: ; @echo $$PARTNERS_BASE_URL",
            "show-base-url",
        ],
        env=inherited | (environment or {}),
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.strip()


def test_the_base_url_is_the_address_make_run_serves() -> None:
    assert _base_url_make_exports() == "http://127.0.0.1:8000"
    assert _base_url_make_exports("PORT=8765") == "http://127.0.0.1:8765"
    assert _base_url_make_exports("HOST=10.0.0.5", "PORT=9000") == "http://10.0.0.5:9000"


def test_a_base_url_set_in_the_environment_wins() -> None:
    chosen = {"PARTNERS_BASE_URL": "https://partners.example.com"}
    assert _base_url_make_exports("PORT=8765", environment=chosen) == "https://partners.example.com"
