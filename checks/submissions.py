"""Grade many learners' submissions: the instructor's "grade" step (the builder is the "assign" step).

Each submission (a .py module, an .ipynb notebook, or a folder of day files) is graded by its own
`pytest --day N --learner PATH --grade-json ...` process, so a submission that crashes the interpreter or hangs at
import cannot take the others down. Everything lands in one folder: per submission its JSON report and its full
pytest output (`<name>.json`, `<name>.log`), and `summary.csv` with one row per submission and day.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from checks.course import Course
from checks.outcome import Status

SUMMARY_FILE = "summary.csv"
SUMMARY_COLUMNS = ("submission", "day", "passed", "failed", "not_started", "course_errors", "total", "note", "path")


@dataclass(frozen=True)
class DayScore:
    """One submission's score on one day; `note` says why a submission could not be graded at all."""

    submission: str
    path: Path
    day: int | None
    passed: int = 0
    failed: int = 0
    not_started: int = 0
    course_errors: int = 0
    total: int = 0
    note: str = ""

    def row(self) -> dict[str, object]:
        return {column: getattr(self, column) for column in SUMMARY_COLUMNS}


def submission_names(paths: list[Path]) -> list[str]:
    """A distinct file-name-safe name per submission: its path below their common folder, e.g. `ana__day1`."""
    resolved = [path.resolve() for path in paths]
    if len(set(resolved)) != len(resolved):
        raise ValueError("the same submission is listed twice")
    common = Path(os.path.commonpath([path.parent for path in resolved]))
    names = []
    for path in resolved:
        relative = path.relative_to(common)
        stem = relative.with_suffix("") if path.is_file() else relative
        names.append("__".join(stem.parts))
    return names


def grade_submissions(submissions: list[Path], days: str, out: Path, *, course: Course | None = None,
                      device: str | None = None, timeout_s: float = 1800, progress: bool = True) -> list[DayScore]:
    """Grade every submission on `days` ("1", "1,4" or "all"), write the reports under `out`, return the scores."""
    missing = [str(path) for path in submissions if not path.exists()]
    if missing:
        raise FileNotFoundError(f"no such submission: {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    scores: list[DayScore] = []
    names = submission_names(submissions)
    for name, path in tqdm(list(zip(names, submissions)), desc="grading submissions", unit="submission",
                           disable=not progress):
        scores.extend(_grade_one(name, path.resolve(), days, out, course, device, timeout_s))
    with open(out / SUMMARY_FILE, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(score.row() for score in scores)
    return scores


def _grade_one(name: str, path: Path, days: str, out: Path, course: Course | None, device: str | None,
               timeout_s: float) -> list[DayScore]:
    report, log = out / f"{name}.json", out / f"{name}.log"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--day", days, "--learner", str(path),
               "--grade-json", str(report)]
    if device:
        command += ["--device", device]
    if course is not None:
        command += ["-o", f"course_root={course.root}", "-o", f"course_models={course.model_loader}"]
    # the subprocess imports this same copy of the course's packages, installed or not
    package_root = str(Path(__file__).resolve().parent.parent)
    python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": python_path}
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=out)
        log.write_text(result.stdout + result.stderr)
    except subprocess.TimeoutExpired as expired:
        log.write_text(_text(expired.stdout) + _text(expired.stderr))
        return [DayScore(name, path, None, note=f"grading ran past {timeout_s:.0f} s and was stopped")]
    if not report.is_file():
        last = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
        return [DayScore(name, path, None, note=f"pytest exited {result.returncode} without a report: {last[0]}")]
    graded = json.loads(report.read_text())
    scores = []
    for number, day in sorted(graded["days"].items(), key=lambda item: int(item[0])):
        counts = day["score"]
        scores.append(DayScore(name, path, int(number), passed=counts.get(Status.PASSED.value, 0),
                               failed=counts.get(Status.FAILED.value, 0),
                               not_started=counts.get(Status.NOT_STARTED.value, 0),
                               course_errors=counts.get(Status.STALE_REFERENCE.value, 0)
                               + counts.get(Status.ERROR.value, 0),
                               total=counts["total"]))
    return scores


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def format_scores(scores: list[DayScore]) -> str:
    """The summary as a table for the terminal."""
    width = max([len("submission")] + [len(score.submission) for score in scores])
    lines = [f"{'submission':<{width}}  day  passed  failed  not started  note"]
    for s in scores:
        day = "-" if s.day is None else str(s.day)
        passed = f"{s.passed}/{s.total}" if s.day is not None else "-"
        errors = f"{s.course_errors} course error(s)" if s.course_errors else ""
        lines.append(f"{s.submission:<{width}}  {day:>3}  {passed:>6}  {s.failed:>6}  {s.not_started:>11}  "
                     f"{s.note or errors}")
    return "\n".join(lines)
