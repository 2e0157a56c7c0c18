"""Command line of the grading machinery.

    python -m checks references --day 1 [--device cpu|cuda]   rebuild day 1's reference outputs from the solutions
    python -m checks references --day all                      every day
    python -m checks grade --day 1 submissions/*.ipynb --out grades --jobs 2   grade many learners' files
    python -m checks manifest                                  rewrite the manifest of reference and zoo hashes
    python -m checks autograder --day 1 --platform gradescope --out DIR   a Gradescope or PrairieLearn autograder

`--root` and `--models` point at another course folder and zoo loader (the project's tests use a fixture course).

Exit codes of `grade`, for scripts: 0 every submission was graded and no exercise failed (passed or not started);
1 at least one exercise failed, or a submission could not be graded (its exercises count as failed); 3 an exercise
hit a course error (a stale reference: rebuild the references, grade again); with 0, 1 and 3 the reports and
summary.csv are written. 2: nothing was graded (a usage error: a missing file, a file neither .py nor .ipynb, an
unknown day; or the course fails its manifest).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checks.course import Course


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m checks", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    refs = commands.add_parser("references", help="rebuild stored reference outputs from the solutions")
    refs.add_argument("--day", required=True, help="a day number, a comma-separated list, or 'all'")
    refs.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device to run the solutions on")
    manifest = commands.add_parser("manifest", help="rewrite checks/references/manifest.json (reference and zoo "
                                   "file hashes, verified before grading)")
    grade = commands.add_parser("grade", help="grade many submissions, each by its own supervisor and workers",
                                epilog="exit 0: no exercise failed; 1: one failed; 3: a course error; 2: nothing "
                                "graded (usage error, or the course fails its manifest)")
    grade.add_argument("submissions", nargs="+", type=Path, help=".py or .ipynb files, or folders of day files")
    grade.add_argument("--day", required=True, help="a day number, a comma-separated list, or 'all'")
    grade.add_argument("--out", type=Path, default=Path("grades"),
                       help="folder for the reports and summary.csv (default: grades)")
    grade.add_argument("--device", choices=("cpu", "cuda"), help="device to grade on (default: cuda if available)")
    grade.add_argument("--limits", default="", metavar="LIMITS",
                       help="grading limits, with the names of pytest's course_limits: e.g. 'import_s=60 audit_s=60 "
                            "submission_s=1800 memory_gb=4' (these are the defaults)")
    grade.add_argument("--timeout", type=float, help="shorthand for --limits submission_s=SECONDS: seconds allowed per "
                       "submission (default 1800)")
    grade.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                       help="submissions graded at once (default: the number of cores)")
    grade.add_argument("--memory-gb", type=float, help="shorthand for --limits memory_gb=GB: memory each worker may "
                       "allocate beyond the warm parent's, in GiB (default 4)")
    autograder = commands.add_parser("autograder", help="build a Gradescope or PrairieLearn autograder of a day "
                                     "(see checks.frontends.autograder)")
    autograder.add_argument("--day", required=True, type=int, help="the day it grades")
    autograder.add_argument("--platform", required=True, choices=("gradescope", "prairielearn"))
    autograder.add_argument("--out", required=True, type=Path, help="folder to write it into")
    autograder.add_argument("--hints", type=int, choices=range(4), default=1,
                            help="hint tiers shown with a failure: 0 none, 1 the nudge (default), 2 and the approach, "
                                 "3 and the recipe")
    autograder.add_argument("--visibility", default="visible",
                            choices=("visible", "hidden", "after_due_date", "after_published"),
                            help="Gradescope: when learners see each test (default visible)")
    autograder.add_argument("--timeout", type=float, default=0.0,
                            help="seconds allowed per submission (default 540, under the platforms' job limits)")
    for sub in (refs, grade, manifest, autograder):
        sub.add_argument("--root", type=Path, help="course folder (default: this repository)")
        sub.add_argument("--models", help="zoo loader as 'module:function' or 'file.py:function'")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from checks.course import DEFAULT_MODEL_LOADER, Course, CourseError
    from checks.store.references import build_references
    from checks.frontends.session import parse_days

    course = Course(args.root.resolve(), args.models or DEFAULT_MODEL_LOADER) if args.root else Course.default()
    if args.models and not args.root:
        course = Course(course.root, args.models)
    if getattr(args, "device", None) == "cuda":
        from checks.frontends.options import GradingOptions

        try:
            GradingOptions.resolve(device="cuda")
        except ValueError as error:
            parser.error(str(error))
    from checks.store.manifest import write_manifest

    if args.command == "manifest":
        print(f"wrote {write_manifest(course)}")
        return 0
    if args.command == "autograder":
        return _autograder(args, course)
    try:
        days = parse_days(args.day, course)
    except CourseError as error:
        parser.error(str(error))
    if args.command == "grade":
        return _grade(args, course)
    for day in days:
        before = path_bytes(day.reference_paths)
        path = build_references(course, day.number, args.device)
        unchanged = path_bytes(day.reference_paths) == before
        done = "unchanged (every output as stored, up to float rounding):" if unchanged else "wrote"
        print(f"day {day.number}: {done} {path} and {path.with_suffix('.json').name} "
              f"({path.stat().st_size / 1024:.0f} KiB, {len(day.checks)} exercises, device {args.device})")
    print(f"wrote {write_manifest(course)}")
    return 0


def path_bytes(paths: tuple[Path, ...]) -> list[bytes | None]:
    return [path.read_bytes() if path.is_file() else None for path in paths]


def _grade(args: argparse.Namespace, course: Course) -> int:
    from checks.course import CourseError
    from checks.frontends.batch import SUMMARY_FILE, exit_code, format_scores, grade_submissions
    from checks.frontends.options import GradingOptions

    out = args.out.resolve()
    try:
        options = GradingOptions.resolve(device=args.device, limits=args.limits, submission_s=args.timeout,
                                         memory_gb=args.memory_gb)
        scores = grade_submissions(args.submissions, args.day, out, course=course, device=options.device,
                                   jobs=args.jobs, limits=options.limits)
    except (FileNotFoundError, ValueError) as error:
        print(f"python -m checks grade: {error}", file=sys.stderr)
        return 2
    except CourseError as error:
        print(f"python -m checks grade: course error, nothing was graded: {error}", file=sys.stderr)
        return 2
    print(format_scores(scores))
    print(f"\nwrote {out / SUMMARY_FILE} and a report and log per submission in {out}")
    return exit_code(scores)


def _autograder(args: argparse.Namespace, course: Course) -> int:
    from checks.frontends.autograder import AutograderSettings, build_autograder
    from checks.course import CourseError

    try:
        settings = AutograderSettings(args.day, args.platform, args.hints, args.visibility, args.timeout)
        written = build_autograder(settings, args.out.resolve(), course)
    except CourseError as error:
        print(f"python -m checks autograder: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
