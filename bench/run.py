"""Run the benchmarks: `python -m bench.run [click purchase dashboard mix] [--engines postgresql,sqlite]`.

`make bench` runs them all (about 10 minutes on the 2-core machine). Results: bench/results/<name>.json and
<name>.md, and bench/results/summary.md for the whole run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any, cast

from bench import click, common, dashboard, mix, purchase
from bench.options import Options

BENCHMARKS: dict[str, Callable[[Options], dict[str, Any]]] = {
    "click": click.run,
    "purchase": purchase.run,
    "dashboard": dashboard.run,
    "mix": mix.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="benchmarks to run (default: all)")
    parser.add_argument("--engines", default=",".join(common.ENGINES), help="postgresql,sqlite")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one measured load run")
    parser.add_argument("--warmup", type=float, default=2.0, help="length of a warm-up run")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the dashboard history")
    parser.add_argument("--profile", action="store_true", help="py-spy the server workers (bench/results/profiles)")
    parser.add_argument("--reuse-history", action="store_true", help="keep the dashboard history of a run before")
    arguments = parser.parse_args()
    engines = tuple(cast(common.Engine, name) for name in arguments.engines.split(",") if name)
    unknown = set(engines) - set(common.ENGINES)
    if unknown:
        parser.error(f"unknown engine(s): {', '.join(sorted(unknown))}")
    options = Options(
        engines=engines,
        seconds=arguments.seconds,
        warmup=arguments.warmup,
        profile=arguments.profile,
        scale=arguments.scale,
        reuse_history=arguments.reuse_history,
    )
    common.require_tools()
    started = time.monotonic()
    for name in arguments.names or list(BENCHMARKS):
        common.log(f"=== {name} ===")
        BENCHMARKS[name](options)
    summary = [
        (common.RESULTS / f"{name}.md").read_text() for name in BENCHMARKS if (common.RESULTS / f"{name}.md").exists()
    ]
    (common.RESULTS / "summary.md").write_text("\n\n".join(summary))
    common.log(f"done in {time.monotonic() - started:.0f} s; summary in bench/results/summary.md")


if __name__ == "__main__":
    main()
