"""The learner's commands (their workspace: `curriculum.tools.workspace`; progress: `curriculum.tools.progress`).

    python -m curriculum start 1            copy day 1's notebook and module into your workspace (never overwrites)
    python -m curriculum progress           grade every day afresh: each exercise's status and each day's score
    python -m curriculum progress --last    the same, from the last grading, without grading again
    python -m curriculum where              the workspace folder ($MECHINTERP_WORKSPACE, else ~/mechinterp-course)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from curriculum.tools.workspace import WORKSPACE_ENV, WorkspaceError, start_day, workspace_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curriculum", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workspace", type=Path,
                        help=f"your workspace folder (default: ${WORKSPACE_ENV}, else ~/mechinterp-course)")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="copy a day's pristine notebook and module into your workspace")
    start.add_argument("day", type=int)
    progress = commands.add_parser("progress", help="every day, its exercises and your status on each")
    progress.add_argument("--last", action="store_true", help="show the last grading instead of grading afresh")
    commands.add_parser("where", help="print the workspace folder")
    args = parser.parse_args(argv)

    if args.command == "where":
        print(workspace_dir(args.workspace))
        return 0
    if args.command == "start":
        try:
            notebook, module = start_day(args.day, args.workspace)
        except WorkspaceError as error:
            print(f"python -m curriculum start: {error}", file=sys.stderr)
            return 1
        print(f"day {args.day} is yours:\n  {notebook}\n  {module}\n"
              f"Open the notebook in JupyterLab (`jupyter lab {notebook}`) or edit the module; both are the same "
              f"document (JupyterLab with jupytext saves both). Grade it with `pytest --day {args.day}`.")
        return 0
    from curriculum.tools.progress import format_progress, grade_progress, last_graded, last_progress

    if args.last:
        report = last_progress(args.workspace)
        if report is None:
            print("no grading yet: run `python -m curriculum progress`", file=sys.stderr)
            return 1
        print(f"{last_graded(args.workspace)}; `python -m curriculum progress` grades afresh")
    else:
        try:
            report = grade_progress(args.workspace, progress=True)
        except RuntimeError as error:
            print(f"python -m curriculum progress: {error}", file=sys.stderr)
            return 1
    print(format_progress(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
