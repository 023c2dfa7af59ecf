"""Command line: `python -m tangler [--check] [--root DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tangler.core import TangleError, differences, drift_report, tangle, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tangler",
        description="Tangle the marked code blocks of the pages under docs/ into src/llm_from_scratch/.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and list each file that differs from what the pages tangle to",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root (default: .)")
    args = parser.parse_args(argv)
    try:
        expected = tangle(args.root)
        if args.check:
            problems = differences(args.root, expected)
            if problems:
                print(drift_report(problems), file=sys.stderr)
                return 1
            print(f"{len(expected)} generated files match the pages")
            return 0
        changed = write(args.root, expected)
    except TangleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for target in changed:
        print(f"wrote {target}")
    if not changed:
        print(f"{len(expected)} generated files already match the pages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
