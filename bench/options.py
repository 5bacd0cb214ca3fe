"""Run options shared by the benchmarks, and the optional py-spy profiler."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from bench import common

PROFILES = common.RESULTS / "profiles"


@dataclass(frozen=True)
class Settings:
    engines: tuple[str, ...]
    seconds: float
    warmup: float
    profile: bool


@dataclass(frozen=True)
class Options:
    engines: tuple[common.Engine, ...] = common.ENGINES
    seconds: float = 10.0  # one measured load run
    warmup: float = 2.0
    profile: bool = False  # py-spy flame graphs of the server workers, in bench/results/profiles/
    scale: float = 1.0  # of the dashboard history
    reuse_history: bool = False  # keep the history database of an earlier run (same scale) if it is there
    progress: bool = True  # progress bars while generating

    def settings(self) -> Settings:
        return Settings(self.engines, self.seconds, self.warmup, self.profile)

    @contextlib.contextmanager
    def profiler(self, server: common.Server, name: str, seconds: float | None = None) -> Iterator[None]:
        """py-spy on every server worker while the block runs (sampling without stopping the process)."""
        if not self.profile or (shutil.which("py-spy") is None and not (common.ROOT / ".venv/bin/py-spy").exists()):
            yield
            return
        spy = shutil.which("py-spy") or str(common.ROOT / ".venv/bin/py-spy")
        PROFILES.mkdir(parents=True, exist_ok=True)
        processes = [
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--duration",
                    f"{seconds or self.seconds:g}",
                    "--pid",
                    str(pid),
                    "--output",
                    str(PROFILES / f"{name}-{pid}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in common.server_pids(server)
        ]
        try:
            yield
        finally:
            for process in processes:
                process.wait(timeout=60)
