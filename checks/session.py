"""A grading session: which days, whose code, on which device; the outcomes so far and their report.

Plain Python, no pytest: `checks.plugin` turns options into a `GradingSession`, makes one test item per exercise that
calls `grade(day, name)`, and prints `table()` / writes `to_json()` at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from checks.course import Course, CourseError, Day
from checks.grading import Grader, default_device
from checks.outcome import Outcome, Status
from checks.learner import LearnerModuleError, load_module


def parse_days(text: str, course: Course) -> list[Day]:
    """`"1"`, `"1,2"` or `"all"` as days of `course`; raises CourseError for anything else."""
    if text.strip().lower() == "all":
        if not course.days:
            raise CourseError(f"the course in {course.root} has no days with checks")
        return list(course.days.values())
    numbers = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise CourseError(f"--day expects a day number, a comma-separated list (1,2) or 'all', got {text!r}")
        numbers.append(int(part))
    return [course.day(n) for n in dict.fromkeys(numbers)]


def learner_file(day: Day, *, solutions: bool = False, learner: Path | None = None) -> Path:
    """Which file to grade for `day`: the learner's curriculum module by default, the solution with `solutions`,
    or `learner`: a .py/.ipynb file, or a folder holding `<module>.py`, `<module>.ipynb` or one `dayN_*` file."""
    if solutions:
        return day.solution_path
    if learner is None:
        if not day.curriculum_path.is_file():
            raise LearnerModuleError(f"{day.curriculum_path} does not exist yet: generate it from the solutions with "
                                     f"`python -m notebooks build --day {day.number}`")
        return day.curriculum_path
    if not learner.is_dir():
        return learner
    for candidate in (learner / f"{day.module}.py", learner / f"{day.module}.ipynb"):
        if candidate.is_file():
            return candidate
    matches = sorted(p for p in learner.glob(f"day{day.number}_*") if p.suffix in (".py", ".ipynb"))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise LearnerModuleError(f"{learner} holds no file for day {day.number} (expected {day.module}.py or .ipynb)")
    names = ", ".join(p.name for p in matches)
    raise LearnerModuleError(f"{learner} holds several files for day {day.number}: {names}")


@dataclass
class GradingSession:
    """Grades the chosen days of `course` from one source (curriculum, solutions, or a learner's path)."""

    course: Course
    days: list[Day]
    device: str = field(default_factory=default_device)
    solutions: bool = False
    learner: Path | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.solutions and self.learner is not None:
            raise CourseError("--solutions and --learner are exclusive: grade the solutions or a learner's file")
        if self.learner is not None and not self.learner.exists():
            raise CourseError(f"--learner: no such file or folder: {self.learner}")
        if self.learner is not None and self.learner.is_file() and len(self.days) > 1:
            raise CourseError("--learner FILE grades one day; to grade several days give a folder of day files")
        self.grader = Grader(self.course, self.device)
        self._modules: dict[int, ModuleType | LearnerModuleError] = {}

    def source(self, day: Day) -> Path | None:
        """The file graded for `day`, or None when it cannot be determined."""
        try:
            return learner_file(day, solutions=self.solutions, learner=self.learner)
        except LearnerModuleError:
            return None

    def module(self, day: Day) -> ModuleType | LearnerModuleError:
        """The graded module of `day` (imported once), or the error that prevented importing it."""
        if day.number not in self._modules:
            try:
                self._modules[day.number] = load_module(learner_file(day, solutions=self.solutions,
                                                                     learner=self.learner))
            except LearnerModuleError as error:
                self._modules[day.number] = error
        return self._modules[day.number]

    def grade(self, day: Day, name: str) -> Outcome:
        """Grade exercise `name` of `day` and record the outcome."""
        module = self.module(day)
        check = day.check(name)
        if isinstance(module, LearnerModuleError):
            outcome = self.grader.grade(None, day, check, missing=str(module))
        else:
            function = getattr(module, name, None)
            missing = f"{module.__file__} has no function {name!r}: did you rename or delete it?"
            outcome = self.grader.grade(function if callable(function) else None, day, check, missing=missing)
        self.outcomes.append(outcome)
        return outcome

    # ---- reports --------------------------------------------------------------------------------------------------
    def scores(self) -> dict[int, dict[str, int]]:
        """Per day: how many exercises ended in each status (and "total")."""
        result: dict[int, dict[str, int]] = {}
        for outcome in self.outcomes:
            counts = result.setdefault(outcome.day, {"total": 0})
            counts["total"] += 1
            counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
        return result

    def table(self) -> str:
        """The end-of-session table: one row per exercise, then each day's score."""
        if not self.outcomes:
            return "no exercise was graded"
        width = max(len("exercise"), *(len(o.exercise) for o in self.outcomes))
        lines = [f"{'day':<4} {'exercise':<{width}}  {'status':<16} {'time':>7}"]
        for o in self.outcomes:
            lines.append(f"{o.day:<4} {o.exercise:<{width}}  {o.status:<16} {o.duration_s:>6.2f}s")
        lines.append("")
        for number, counts in sorted(self.scores().items()):
            lines.append(f"day {number}: {score_line(counts)}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The session as a JSON-ready dict: per day its source file and score, per exercise its outcome."""
        days = {}
        for day in self.days:
            source = self.source(day)
            days[str(day.number)] = {"module": day.module, "source": str(source) if source else None,
                                     "score": self.scores().get(day.number, {"total": 0})}
        return {"device": str(self.grader.env.device), "days": days,
                "exercises": [outcome.to_dict() for outcome in self.outcomes]}

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


def score_line(counts: dict[str, int]) -> str:
    """E.g. "7/12 passed, 3 not started, 2 failed"."""
    parts = [f"{counts.get('passed', 0)}/{counts['total']} passed"]
    for status in (Status.NOT_STARTED, Status.FAILED, Status.STALE_REFERENCE, Status.ERROR):
        if counts.get(status.value):
            parts.append(f"{counts[status.value]} {status}")
    return ", ".join(parts)
