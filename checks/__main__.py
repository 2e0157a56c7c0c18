"""Command line of the grading machinery.

    python -m checks references --day 1 [--device cpu|cuda]   rebuild day 1's reference outputs from the solutions
    python -m checks references --day all                      every day

`--root` and `--models` point at another course folder and zoo loader (the project's tests use a fixture course).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m checks", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    refs = commands.add_parser("references", help="rebuild stored reference outputs from the solutions")
    refs.add_argument("--day", required=True, help="a day number, a comma-separated list, or 'all'")
    refs.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device to run the solutions on")
    refs.add_argument("--root", type=Path, help="course folder (default: this repository)")
    refs.add_argument("--models", help="zoo loader as 'module:function' or 'file.py:function'")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from checks.course import DEFAULT_MODEL_LOADER, Course, CourseError
    from checks.references import build_references
    from checks.session import parse_days

    course = Course(args.root.resolve(), args.models or DEFAULT_MODEL_LOADER) if args.root else Course.default()
    if args.models and not args.root:
        course = Course(course.root, args.models)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available here")
    try:
        days = parse_days(args.day, course)
    except CourseError as error:
        parser.error(str(error))
    for day in days:
        path = build_references(course, day.number, args.device)
        print(f"day {day.number}: wrote {path} and {path.with_suffix('.json').name} "
              f"({path.stat().st_size / 1024:.0f} KiB, {len(day.checks)} exercises, device {args.device})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
