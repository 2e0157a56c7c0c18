"""Grade many learners' submissions: the instructor's "grade" step (the builder is the "assign" step).

Each submission (a .py module, an .ipynb notebook, or a folder of day files) is graded by its own supervisor
process, forked from this one, with up to `jobs` at a time; each supervisor runs the learner's code in fresh workers
(`checks.isolation.supervisor`), forked per exercise from the warm parent its job keeps for every submission it grades
(see `_Batch`), with reads of the solutions and stored references forbidden. This process runs no
learner code and writes every file: it verifies the manifest's files once and loads the references, hands each
supervisor that in-memory copy (`checks.isolation.supervisor.VerifiedCourse`, taken while the files' stats are
unchanged, else verified again; so a submission that tampers with the course cannot change what the next one is
graded against), restores any file a submission changed before the next one starts, receives each
report over a pipe, and, once every worker is gone, writes per submission `<name>.json` (the report) beside
`<name>.log` (each exercise's outcome as it was graded, with its message, and whatever the learner's code printed;
capped at `LOG_LIMIT` bytes) and `summary.csv` with one row per submission and day.

`exit_code(scores)` is what `python -m checks grade` exits with: 0 when no exercise failed, 1 when one failed (or
a submission could not be graded), 3 when an exercise hit a course error (a stale reference: rebuild, grade again).
"""

from __future__ import annotations

import csv
import json
import os
import select
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks.isolation import sandbox
from checks.course import Course, Day
from checks.isolation.limits import Limits, describe_end
from checks.store.manifest import restore_changed
from checks.pipeline.outcome import Status

SUMMARY_FILE = "summary.csv"
LOG_LIMIT = 1 << 20  # bytes of a submission's log kept (its first ones)
_LOG_MESSAGE_LIMIT = 2000  # characters of one exercise's message in the log
_PROGRESS = b"."  # sent on the report pipe per exercise graded, before the report
SUMMARY_COLUMNS = ("submission", "day", "passed", "failed", "not_started", "course_errors", "total", "note", "path")
_REPORT_GRACE_S = 120.0


@dataclass(frozen=True)
class DayScore:
    """One submission's score on one day; `note` says why a submission could not be graded normally."""

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
    """A distinct file-name-safe name per submission: its path below their common folder, e.g. `ana__day1`; the
    suffix is kept where two submissions would otherwise share a name (`x.py` and `x.ipynb`)."""
    resolved = [path.resolve() for path in paths]
    if len(set(resolved)) != len(resolved):
        raise ValueError("the same submission is listed twice")
    common = Path(os.path.commonpath([path.parent for path in resolved]))
    relatives = [path.relative_to(common) for path in resolved]
    stems = ["__".join((rel.with_suffix("") if path.is_file() else rel).parts)
             for rel, path in zip(relatives, resolved)]
    return [stem if stems.count(stem) == 1 else "__".join(rel.parts).replace(".", "_")
            for stem, rel in zip(stems, relatives)]


def grade_submissions(submissions: list[Path], days: str, out: Path, *, course: Course | None = None,
                      device: str | None = None, jobs: int | None = None,
                      limits: Limits | None = None, progress: bool = True) -> list[DayScore]:
    """Grade every submission on `days` ("1", "1,4" or "all"), write the reports under `out`, return the scores.
    Raises CourseError when the course itself is broken (e.g. a file does not match the manifest)."""
    from checks.pipeline.grading import default_device
    from checks.isolation.supervisor import verify_course
    from checks.store.manifest import verify_manifest
    from checks.frontends.session import parse_days

    missing = [str(path) for path in submissions if not path.exists()]
    if missing:
        raise FileNotFoundError(f"no such submission: {', '.join(missing)}")
    from checks.frontends.session import LEARNER_SUFFIXES

    other = [str(path) for path in submissions if path.is_file() and path.suffix not in LEARNER_SUFFIXES]
    if other:
        raise ValueError(f"neither a .py module nor a .ipynb notebook (nor a folder of day files): {', '.join(other)}")
    course = course or Course.default()
    chosen = parse_days(days, course)
    manifest = verify_manifest(course)  # once, before any learner code: every submission is held to this copy
    sandbox.harden_supervisor()  # its report pipes are out of reach of any process without CAP_SYS_PTRACE
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    limits = limits or Limits()
    names = submission_names(submissions)
    jobs = max(1, jobs or os.cpu_count() or 1)
    batch = _Batch(course, chosen, out, device or default_device(), manifest, limits)
    jobs = min(jobs, len(submissions))
    batch.start_workers(jobs)  # forked before this process holds the course's files (the references) in memory
    try:
        batch.verified = verify_course(course, chosen, manifest)  # once: each supervisor takes it (see VerifiedCourse)
        exercises = sum(len(day.checks) for day in chosen)
        reports = batch.run([(name, path.resolve()) for name, path in zip(names, submissions)], jobs, progress,
                            exercises)
    finally:
        batch.stop_workers()
    scores: list[DayScore] = []
    for name, path in zip(names, submissions):
        report, note = reports[name]
        (out / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        scores.extend(_scores(name, path.resolve(), report, note))
    with open(out / SUMMARY_FILE, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(score.row() for score in scores)
    return scores


class _Batch:
    """Forks one supervisor process per submission, `jobs` at a time, and collects their reports. Each job keeps one
    warm worker parent (a zygote, `checks.isolation.zygote`) for the submissions it grades in turn: a supervisor forks no
    zygote of its own but asks the job's for a fresh child per exercise, as always, so what one exercise does stays
    in its own process (and PID namespace). A zygote that died, or served a submission whose grading did not end
    normally (killed, overdue, no report), is replaced by one from a fresh interpreter before the next submission."""

    def __init__(self, course: Course, days: list[Day], out: Path, device: str, manifest: dict[str, str],
                 limits: Limits) -> None:
        self.course, self.days, self.out, self.device = course, days, out, device
        self.manifest, self.limits = manifest, limits
        self.verified: Any = None  # the course files verified once (`checks.isolation.supervisor.VerifiedCourse`)
        self.zygotes: list[Any] = []  # per job, its warm worker parent (`checks.isolation.supervisor._Zygote`)

    def _zygote_config(self) -> dict[str, Any]:
        from checks.isolation.supervisor import zygote_config

        return zygote_config(self.course, self.days, self.device, self.limits, True, self.out, None, many=True)

    def start_workers(self, jobs: int) -> None:
        """Fork one zygote per job and wait until they are ready (they start side by side)."""
        from checks.isolation.supervisor import start_zygote

        self.zygotes = [start_zygote(self._zygote_config(), fork=True) for _ in range(jobs)]
        for zygote in self.zygotes:
            if zygote.wait_ready(self.limits.setup_s):  # it failed: replaced at its first use
                zygote.send_kill()

    def _replace_worker(self, job: int) -> None:
        """A fresh zygote for `job`, from a new interpreter (this process now holds the course's files)."""
        from checks.isolation.supervisor import start_zygote

        self.zygotes[job].kill()
        self.zygotes[job] = start_zygote(self._zygote_config(), fork=False)
        self.zygotes[job].wait_ready(self.limits.setup_s)

    def stop_workers(self) -> None:
        for zygote in self.zygotes:
            zygote.kill()

    def run(self, queue: list[tuple[str, Path]], jobs: int, progress: bool,
            exercises: int) -> dict[str, tuple[dict, str]]:
        """Grade every submission of `queue` (`exercises` each); a progress bar counts the exercises graded."""
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread: this process forks
        reports: dict[str, tuple[dict, str]] = {}
        # report pipe -> the submission's name and path, its supervisor's pid, what it sent, when it started, its job
        running: dict[int, tuple[str, Path, int, bytearray, float, int]] = {}
        pending = list(queue)
        with tqdm(total=len(queue) * exercises, desc=f"grading {len(queue)} submission(s)", unit="exercise",
                  disable=not progress) as bar:
            while pending or running:
                while pending and len(running) < jobs:
                    name, path = pending.pop(0)
                    job = min(set(range(jobs)) - {item[5] for item in running.values()})
                    if not self.zygotes[job].alive():
                        self._replace_worker(job)
                    pipe, pid = self._fork(name, path, list(running), job)
                    running[pipe] = (name, path, pid, bytearray(), time.monotonic(), job)
                readable, _, _ = select.select(list(running), [], [], 1.0)
                now = time.monotonic()
                for pipe in list(running):
                    name, path, pid, data, start, job = running[pipe]
                    overdue = now - start > self.limits.submission_s + _REPORT_GRACE_S
                    if pipe in readable:
                        chunk = os.read(pipe, 1 << 20)
                        if not data.lstrip(_PROGRESS):  # the report has not begun: count the exercises graded
                            bar.update(len(chunk) - len(chunk.lstrip(_PROGRESS)))
                        data += chunk
                        if chunk:
                            continue
                    elif not overdue:
                        continue
                    if overdue:
                        _kill(pid)
                    os.close(pipe)
                    _, status = os.waitpid(pid, 0)
                    del running[pipe]
                    graded = len(data) - len(data.lstrip(_PROGRESS))
                    report, note = self._report(name, path, bytes(data.lstrip(_PROGRESS)), status, overdue)
                    if overdue or status != 0:  # its zygote may still run that submission's children
                        self._replace_worker(job)
                    _cap_log(self.out / f"{name}.log")
                    restored = restore_changed(self.course, self.manifest, self.verified.contents)
                    if restored:  # native code got past the worker's guard: undo it before the next submission
                        self.verified.refresh_stats(self.course)  # else the next supervisors verify the files again
                        warning = (f"course files changed while this submission was graded, restored: "
                                   f"{', '.join(restored)}")
                        note = f"{note}; {warning}" if note else warning
                        report["course_files_restored"] = restored
                    copied = _identical_to_solution(self.days, path)  # here, while the other jobs grade
                    if copied:
                        report["identical_to_solution"] = copied
                        flag = f"identical to the reference solution: {', '.join(copied)}"
                        note = f"{note}; {flag}" if note else flag
                    reports[name] = (report, note)
                    bar.update(exercises - min(graded, exercises))
        return reports

    def _fork(self, name: str, path: Path, others: list[int], job: int) -> tuple[int, int]:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for fd in [read_end, *others]:  # the other submissions' reports are none of this one's business
                    os.close(fd)
                for index, zygote in enumerate(self.zygotes):  # nor the other jobs' workers
                    if index != job:
                        zygote.control.close()
                code = self._grade_one(name, path, write_end, self.zygotes[job])
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(write_end)
        return read_end, pid

    def _grade_one(self, name: str, path: Path, pipe: int, zygote: Any) -> int:
        """In the forked supervisor process: grade one submission, send its report as JSON on `pipe`."""
        from checks.frontends.session import GradingSession

        os.setpgid(0, 0)
        log = self.out / f"{name}.log"
        log.write_text("")
        session = GradingSession(self.course, self.days, device=self.device, learner=path, limits=self.limits,
                                 forbid_reads=True, expected_manifest=self.manifest, worker_log=log,
                                 worker_closes=[pipe], zygote=zygote, verified=self.verified)
        try:
            for day in self.days:
                for check in day.checks:
                    outcome = session.grade_exercise(day, check.name)
                    _log_outcome(log, outcome)
                    os.write(pipe, _PROGRESS)
        finally:
            session.close()  # every worker is gone before the report leaves this process
        report = session.to_json()
        data = json.dumps(report).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(pipe, view):]
        return 0

    def _report(self, name: str, path: Path, data: bytes, status: int, overdue: bool) -> tuple[dict, str]:
        try:
            report = json.loads(data)
            if isinstance(report, dict) and "exercises" in report:
                return report, ""
        except ValueError:
            pass
        why = (f"grading ran past {self.limits.submission_s + _REPORT_GRACE_S:.0f} s and was stopped" if overdue
               else f"its grading process {describe_end(status)} without a report")
        return self._failed_report(path, why), why

    def _failed_report(self, path: Path, why: str) -> dict[str, Any]:
        """Every exercise failed, with why: the total still counts every exercise of every day."""
        exercises = [{"exercise": check.name, "day": day.number, "status": Status.FAILED.value, "message": why,
                      "hint": "", "case": "", "duration_s": 0.0} for day in self.days for check in day.checks]
        days = {str(day.number): {"module": day.module, "source": str(path),
                                  "score": {"total": len(day.checks), Status.FAILED.value: len(day.checks)}}
                for day in self.days}
        return {"device": self.device, "isolated": True, "days": days, "exercises": exercises}


def _log_outcome(log: Path, outcome: Any) -> None:
    """Append one exercise's outcome to the submission's log (the learner's printed output lands there too)."""
    message = outcome.message if len(outcome.message) <= _LOG_MESSAGE_LIMIT else (
        outcome.message[:_LOG_MESSAGE_LIMIT] + f" [... {len(outcome.message) - _LOG_MESSAGE_LIMIT} more characters]")
    text = f"== day {outcome.day} {outcome.exercise}: {outcome.status} ({outcome.duration_s:.2f} s)\n"
    if message:
        text += "".join(f"   {line}\n" for line in message.splitlines())
    with open(log, "a") as handle:
        handle.write(text)


def _cap_log(log: Path) -> None:
    """Keep at most LOG_LIMIT bytes of a submission's log, its beginning and a line saying it was cut (a learner's
    code may print without end)."""
    try:
        size = log.stat().st_size
        if size > LOG_LIMIT:
            marker = f"\n[log cut to {LOG_LIMIT} bytes; it had {size}]\n".encode()
            with open(log, "r+b") as handle:
                handle.truncate(LOG_LIMIT - len(marker))
                handle.seek(LOG_LIMIT - len(marker))
                handle.write(marker)
    except OSError:
        pass


def _identical_to_solution(days: list[Day], path: Path) -> list[str]:
    """The exercises this submission writes exactly as the reference solution (`checks.judging.similarity`)."""
    from checks.pipeline.learner import LearnerModuleError
    from checks.frontends.session import learner_file
    from checks.judging.similarity import identical_to_solution

    found = []
    for day in days:
        try:
            found += identical_to_solution(day, learner_file(day, learner=path))
        except LearnerModuleError:
            pass
    return found


def _kill(pid: int) -> None:
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass


def _scores(name: str, path: Path, report: dict, note: str) -> list[DayScore]:
    scores = []
    for number, day in sorted(report["days"].items(), key=lambda item: int(item[0])):
        counts = day["score"]
        scores.append(DayScore(name, path, int(number), passed=counts.get(Status.PASSED.value, 0),
                               failed=counts.get(Status.FAILED.value, 0),
                               not_started=counts.get(Status.NOT_STARTED.value, 0),
                               course_errors=counts.get(Status.STALE_REFERENCE.value, 0)
                               + counts.get(Status.ERROR.value, 0),
                               total=counts["total"], note="; ".join(filter(None, [note, day.get("note", "")]))))
    return scores


def exit_code(scores: list[DayScore]) -> int:
    """3 when an exercise hit a course error, else 1 when one failed, else 0 (see the module docstring)."""
    if any(score.course_errors for score in scores):
        return 3
    return 1 if any(score.failed for score in scores) else 0


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
