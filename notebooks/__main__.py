"""Command line of the notebook builder (see `notebooks.builder`).

    python -m notebooks build [--day N] [--force]   write the stale generated files of every day (or day N)
    python -m notebooks build --check               list stale generated files; exit 1 if there is any
    python -m notebooks handouts --out DIR [--day N]  one self-contained, offline HTML page per day (notebooks.handouts)
    python -m notebooks dist --learner OUT          the course without solutions, for a class (notebooks.dist)

The builder writes only the course's pristine generated files, never a learner's workspace, and never overwrites a
generated file whose content it did not write unless given --force.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from curriculum.tools.paths import COURSE_ROOT

from notebooks.builder import BuildError, build_day, find_days, not_written_by_builder, stale_files



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notebooks", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build curriculum modules and notebooks from solutions/")
    build.add_argument("--day", type=int, action="append", help="only this day (repeatable)")
    build.add_argument("--force", action="store_true",
                       help="rewrite every generated file, even one edited by hand or run in Jupyter, and re-execute "
                            "the instructor notebooks")
    build.add_argument("--check", action="store_true", help="write nothing; exit 1 listing stale generated files")
    build.add_argument("--root", type=Path, default=COURSE_ROOT, help="course folder (default: this repository)")
    handouts = commands.add_parser("handouts", help="write one self-contained HTML page per day, readable offline")
    handouts.add_argument("--out", type=Path, required=True, help="folder to write the pages into")
    handouts.add_argument("--day", type=int, action="append", help="only this day (repeatable)")
    handouts.add_argument("--root", type=Path, default=COURSE_ROOT, help="course folder (default: this repository)")
    dist = commands.add_parser("dist", help="write the learner's distribution: the course without its solutions")
    dist.add_argument("--learner", type=Path, required=True, metavar="OUT", help="a new or empty folder")
    dist.add_argument("--root", type=Path, default=COURSE_ROOT, help="course folder (default: this repository)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.command == "dist":
        from notebooks.dist import DistError, write_learner_dist

        try:
            write_learner_dist(root, args.learner)
        except DistError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"wrote the learner's distribution (no solutions) to {args.learner}")
        return 0
    if args.command == "handouts":
        from notebooks.handouts import build_handouts

        try:
            written = build_handouts(root, args.out.resolve(), args.day)
        except (BuildError, FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        for path in written:
            print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return 0
    try:
        days = find_days(root, args.day)
    except BuildError as error:
        parser.error(str(error))
    if args.check:
        stale = [path for files in days for path in stale_files(files)]
        theirs = {path for files in days for path in not_written_by_builder(files)}
        for path in stale:
            edited = " (its content is not the builder's: rebuilding it needs --force)" if path in theirs else ""
            print(f"stale: {path.relative_to(root)}{edited}")
        if stale:
            print("run `python -m notebooks build` to rebuild them", file=sys.stderr)
            return 1
        print(f"all generated files of {len(days)} day(s) are up to date")
        return 0
    failed = False
    for files in days:
        try:
            build_day(files, force=args.force)
        except BuildError as error:
            print(f"error: {error}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
