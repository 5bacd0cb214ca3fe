"""Summarise py-spy raw (collapsed stack) profiles: `python -m bench.profile_summary FILE... [--top N]`.

Prints the functions with the most samples on-CPU at the top of the stack (self) and anywhere in the stack
(inclusive), as a share of all samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^)]*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match.group("file")
    for marker in ("site-packages/", "src/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{match.group('function')} ({file})"


def summarise(paths: list[Path], top: int, match: str | None) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_name(frame) for frame in stack.split(";")[1:]]  # the first is the process/thread
            if match and not any(match in frame for frame in frames):
                continue
            total += count
            if frames:
                own[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    lines = [f"{total} samples"]
    for title, counter in (("self", own), ("inclusive", inclusive)):
        lines.append(f"--- {title}")
        lines += [f"{count / total:6.1%}  {name}" for name, count in counter.most_common(top)] if total else []
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", help="only stacks with a frame containing this text")
    arguments = parser.parse_args()
    print(summarise(arguments.paths, arguments.top, arguments.match))


if __name__ == "__main__":
    main()
