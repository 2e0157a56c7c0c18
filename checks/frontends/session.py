"""A grading session: which days, whose code, on which device; the outcomes so far and their report.

Plain Python, no pytest: `checks.frontends.plugin` turns options into a `GradingSession`, makes one test item per
exercise that calls `grade_exercise(day, name)`, and prints `table()` / writes `to_json()` at the end.

Learner code runs in worker processes under a `checks.isolation.supervisor.Supervisor`; this process only judges and
reports.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from checks.course import Course, CourseError, Day
from checks.isolation.limits import Limits
from checks.isolation.supervisor import Supervisor
from checks.pipeline.grading import default_device
from checks.pipeline.learner import LearnerModuleError, written_exercises
from checks.pipeline.outcome import Outcome, Status, reason_given_at
from curriculum.tools.workspace import learner_copies, workspace_dir

LEARNER_SUFFIXES = (".py", ".ipynb")


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


def learner_file(day: Day, *, solutions: bool = False, learner: Path | None = None,
                 workspace: Path | None = None) -> Path:
    """Which file to grade for `day`: with `solutions` the solution; with `learner` that .py/.ipynb file, or in that
    folder `<module>.py`, `<module>.ipynb` or the one `dayN_*` file; else the learner's copy in their workspace
    (`curriculum.tools.workspace`: the more recently modified of its notebook and module), else the pristine stub."""
    if solutions:
        return day.solution_path
    if learner is None:
        copies = learner_copies(day.module, workspace)
        if copies:
            return copies[0]
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


def graded_file_report(day: Day, *, solutions: bool = False, learner: Path | None = None,
                       workspace: Path | None = None) -> list[str]:
    """Lines saying which file is graded for `day` and why, and any work of the learner's that it does not hold."""
    try:
        path = learner_file(day, solutions=solutions, learner=learner, workspace=workspace)
    except LearnerModuleError as error:
        return [f"day {day.number}: {error}"]
    if solutions or learner is not None:
        return [f"day {day.number}: grading {path}"]
    copies = learner_copies(day.module, workspace)
    if not copies:
        return [f"day {day.number}: grading {path}, the course's pristine stub: you have no copy of day {day.number} "
                f"in {workspace_dir(workspace)} yet (`python -m curriculum start {day.number}` makes one)"]
    lines = [f"day {day.number}: grading your copy {path}"]
    if len(copies) == 2:
        other = copies[1]
        names = [check.name for check in day.checks]
        missing = sorted(written_exercises(other, names) - written_exercises(path, names), key=names.index)
        if missing:
            lines.append(f"  warning: {other.name} (older) holds work on {', '.join(missing)} that {path.name} lacks: "
                         f"only {path.name}, the more recently modified, is graded: copy that work into it (in "
                         "JupyterLab with jupytext, saving the notebook writes both files)")
        else:
            lines.append(f"  ({path.name} is the more recently modified of the pair; {other.name} adds no work)")
    return lines


@dataclass
class GradingSession:
    """Grades the chosen days of `course` from one source (curriculum, solutions, or a learner's path)."""

    course: Course
    days: list[Day]
    device: str = field(default_factory=default_device)
    solutions: bool = False
    learner: Path | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    forbid_reads: bool = False  # instructor grading: reading the solutions or stored references fails the exercise
    expected_manifest: dict[str, str] | None = None
    worker_log: Path | None = None
    worker_closes: list[int] = field(default_factory=list)  # descriptors of this process the workers must not hold
    hint_tiers: int = 0  # --course-hints N: the tiers of the course's hints shown (and listed in the JSON report)
    zygote: Any = None  # a warm worker parent shared across submissions (`checks.frontends.batch`), else one of its own
    prestarted: bool = False  # use the zygote `checks.isolation.zygote.prestart` started (pytest --day), if any
    verified: Any = None  # the course's files verified once for a batch (`checks.isolation.supervisor.VerifiedCourse`)

    def __post_init__(self) -> None:
        if self.solutions and self.learner is not None:
            raise CourseError("--solutions and --learner are exclusive: grade the solutions or a learner's file")
        if self.learner is not None and not self.learner.exists():
            raise CourseError(f"--learner: no such file or folder: {self.learner}")
        if self.learner is not None and self.learner.is_file() and self.learner.suffix not in LEARNER_SUFFIXES:
            raise CourseError(f"--learner: {self.learner} is neither a .py module nor a .ipynb notebook (nor a folder "
                              "of day files)")
        if self.learner is not None and self.learner.is_file() and len(self.days) > 1:
            raise CourseError("--learner FILE grades one day; to grade several days give a folder of day files")
        self.supervisor = Supervisor(self.course, self.days, self.device, limits=self.limits,
                                     forbid_reads=self.forbid_reads, expected_manifest=self.expected_manifest,
                                     worker_log=self.worker_log, worker_closes=self.worker_closes, zygote=self.zygote,
                                     prestarted=self.prestarted, verified=self.verified)
        self._lookahead: Any = None  # a checks.isolation.lookahead.Lookahead once `plan` was called

    def source(self, day: Day) -> Path | None:
        """The file graded for `day`, or None when it cannot be determined."""
        try:
            return learner_file(day, solutions=self.solutions, learner=self.learner)
        except LearnerModuleError:
            return None

    def grade_exercise(self, day: Day, name: str) -> Outcome:
        """Grade exercise `name` of `day` (or fetch it, graded ahead: see `plan`) and record the outcome."""
        if self._lookahead is not None and (day.number, name) in self._lookahead:
            outcome = self._lookahead.outcome((day.number, name))
        else:
            outcome = self._grade_isolated(day, name)
        first = self.reason_given_at(day)
        if first is not None and self.source(day) is None:  # no file to grade: said once, as for one that fails
            outcome = dataclasses.replace(outcome, message=reason_given_at(day.number, first))
        self.outcomes.append(outcome)
        return outcome

    def reason_given_at(self, day: Day) -> str | None:
        """When `day`'s file cannot be graded (there is none, or it cannot be imported), which fails every exercise
        of the day for one reason: the exercise whose outcome gives that reason (the day's first graded), else None.
        The others' messages only point there."""
        path = self.source(day)
        if path is not None:
            return self.supervisor.unimportable(day.number, path)
        return next((o.exercise for o in self.outcomes if o.day == day.number), None)

    def plan(self, exercises: list[tuple[Day, str]]) -> None:
        """Start grading `exercises` (in the order `grade_exercise` will ask for them) in the background, as many at a
        time as the limits allow (`checks.isolation.lookahead`). Without a plan, `grade_exercise` grades one exercise
        when asked."""
        if self._lookahead is not None or not exercises:
            return
        from checks.isolation.lookahead import Lookahead

        days = {day.number: day for day, _ in exercises}
        self._lookahead = Lookahead([(day.number, name) for day, name in exercises],
                                    lambda key: self._grade_isolated(days[key[0]], key[1]), self.limits.parallel,
                                    group=lambda key: key[0])

    def _grade_isolated(self, day: Day, name: str) -> Outcome:
        check = day.check(name)
        try:
            path = learner_file(day, solutions=self.solutions, learner=self.learner)
        except LearnerModuleError as error:
            return Outcome(check.name, day.number, Status.FAILED, str(error))
        return self.supervisor.grade_file(day, check, path)

    def close(self) -> None:
        """Stop the grading workers."""
        if self._lookahead is not None:
            self._lookahead.stop()
        self.supervisor.close()
        if self._lookahead is not None:
            self._lookahead.join()

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
                                     "score": self.scores().get(day.number, {"total": 0}), "note": self.note(day)}
        report = {"device": str(torch.device(self.device)), "isolated": True, "days": days,
                  "exercises": [self._record(outcome) for outcome in self.outcomes]}
        report["sandbox"] = self.supervisor.state()  # which isolation features held on this machine
        return report

    def _record(self, outcome: Outcome) -> dict[str, Any]:
        """An outcome as JSON; a failed one lists the course's hints shown (tiers 1..--course-hints)."""
        from checks.judging.hints import shown_hints

        record = outcome.to_dict()
        if outcome.status is Status.FAILED:
            day = next(day for day in self.days if day.number == outcome.day)
            record["hints"] = shown_hints(day.check(outcome.exercise).hints, self.hint_tiers)
        return record

    def note(self, day: Day) -> str:
        """Why `day`'s file could not be graded at all (no such file, it cannot be imported), or ""."""
        try:
            path = learner_file(day, solutions=self.solutions, learner=self.learner)
        except LearnerModuleError as error:
            return str(error)
        first = self.supervisor.unimportable(day.number, path)
        said = next((o.message for o in self.outcomes if o.day == day.number and o.exercise == first), "")
        return f"{path.name} cannot be graded: {said.splitlines()[0]}" if said else ""

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
