"""The learner's progress: every day of the course, its exercises, and the learner's status on each.

`grade_progress()` grades every day afresh (one `pytest --day all` process, the same grading as in the terminal) on
the learner's workspace copies, or the pristine stubs of days not started, and keeps the report in the workspace
(`.progress/last.json`); `last_progress()` reads that report back; `format_progress()` lays it out per day.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from curriculum.workspace import COURSE_ROOT, workspace_dir

REPORT = Path(".progress") / "last.json"
STATUS_ORDER = ("passed", "failed", "not started", "stale reference", "error")


def grade_progress(workspace: Path | str | None = None, *, course_root: Path | None = None,
                   course_models: str | None = None, device: str | None = None) -> dict[str, Any]:
    """Grade every day on the learner's files; returns the JSON report (also written to `<workspace>/REPORT`)."""
    base = workspace_dir(workspace)
    report = base / REPORT
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--day", "all",
               "--grade-json", str(report)]
    if device:
        command += ["--course-device", device]
    if course_root is not None:
        command += ["-o", f"course_root={course_root}"]
    if course_models is not None:
        command += ["-o", f"course_models={course_models}"]
    python_path = os.pathsep.join(filter(None, [str(COURSE_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": python_path, "MECHINTERP_WORKSPACE": str(base)}
    result = subprocess.run(command, capture_output=True, text=True, cwd=base, env=env)
    if not report.is_file():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise RuntimeError(f"grading stopped before writing its report (exit {result.returncode}):\n{tail}")
    return json.loads(report.read_text())


def last_progress(workspace: Path | str | None = None) -> dict[str, Any] | None:
    """The report of the last `grade_progress`, or None if there was none."""
    report = workspace_dir(workspace) / REPORT
    return json.loads(report.read_text()) if report.is_file() else None


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
