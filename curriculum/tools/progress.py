"""The learner's progress: every day of the course, its exercises, and the learner's status on each.

`grade_progress()` grades every day afresh (one `pytest --day all` process, the same grading as in the terminal) on
the learner's workspace copies, or the pristine stubs of days not started, and keeps the report in the workspace
(`.progress/last.json`); `last_progress()` reads that report back; `format_progress()` lays it out per day.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from curriculum.tools.paths import COURSE_ROOT
from curriculum.tools.workspace import workspace_dir

REPORT = Path(".progress") / "last.json"
STATUS_ORDER = ("passed", "failed", "not started", "stale reference", "error")


_COLLECTED = re.compile(r"collected (\d+) items?")
_GRADED = re.compile(r"^day\d+::\w+ ")


def grade_progress(workspace: Path | str | None = None, *, course_root: Path | None = None,
                   course_models: str | None = None, device: str | None = None,
                   progress: bool = False) -> dict[str, Any]:
    """Grade every day on the learner's files; returns the JSON report (also written to `<workspace>/REPORT`).
    progress: show a progress bar (on stderr) that counts the exercises graded."""
    from tqdm import tqdm

    base = workspace_dir(workspace)
    report = base / REPORT
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--day", "all",
               "--grade-json", str(report)]
    if device:
        command += ["--course-device", device]
    if course_root is not None:
        command += ["-o", f"course_root={course_root}"]
    if course_models is not None:
        command += ["-o", f"course_models={course_models}"]
    python_path = os.pathsep.join(filter(None, [str(COURSE_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": python_path, "MECHINTERP_WORKSPACE": str(base)}
    lines: list[str] = []
    with tqdm(desc="grading every day", unit="exercise", disable=not progress) as bar:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=base,
                              env=env) as process:
            assert process.stdout is not None
            for line in process.stdout:  # pytest -v: "collected N items", then a line per exercise graded
                lines.append(line)
                collected = _COLLECTED.search(line)
                if collected and bar.total is None:
                    bar.total = int(collected.group(1))
                    bar.refresh()
                elif _GRADED.match(line):
                    bar.update(1)
    if not report.is_file():
        tail = "".join(lines).strip().splitlines()[-5:]
        raise RuntimeError(f"grading stopped before writing its report (exit {process.returncode}):\n"
                           + "\n".join(tail))
    return json.loads(report.read_text())


def last_progress(workspace: Path | str | None = None) -> dict[str, Any] | None:
    """The report of the last `grade_progress`, or None if there was none."""
    report = workspace_dir(workspace) / REPORT
    return json.loads(report.read_text()) if report.is_file() else None


def last_graded(workspace: Path | str | None = None, now: datetime.datetime | None = None) -> str:
    """When the last `grade_progress` ran, e.g. "graded 2026-12-04 11:52 (3 hours ago)", or "" if it never did."""
    report = workspace_dir(workspace) / REPORT
    if not report.is_file():
        return ""
    when = datetime.datetime.fromtimestamp(report.stat().st_mtime).astimezone()
    seconds = max(0, int(((now or datetime.datetime.now().astimezone()) - when).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"graded {when:%Y-%m-%d %H:%M} ({count} {unit}{'s' if count > 1 else ''} ago)"
    return f"graded {when:%Y-%m-%d %H:%M} (just now)"


def format_progress(report: dict[str, Any]) -> str:
    """Per day: the file graded, the score, and each exercise with its status."""
    lines = []
    for number, day in sorted(report["days"].items(), key=lambda item: int(item[0])):
        exercises = [entry for entry in report["exercises"] if str(entry["day"]) == number]
        counts = {status: sum(entry["status"] == status for entry in exercises) for status in STATUS_ORDER}
        score = f"{counts['passed']}/{len(exercises)} passed" + "".join(
            f", {counts[status]} {status}" for status in STATUS_ORDER[1:] if counts[status])
        lines.append(f"day {number} ({day['module']}): {score}")
        lines.append(f"  graded {day['source']}")
        for entry in exercises:
            lines.append(f"    {entry['status']:<12} {entry['exercise']}")
    return "\n".join(lines)
