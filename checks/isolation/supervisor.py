"""The supervisor: grades exercises by running them in a worker (`checks.isolation.worker`), and never runs learner code.

Before any learner code runs it forks the worker's warm parent (the zygote; or uses one shared with the supervisors of
other submissions, see `checks.frontends.batch`), verifies the manifest of the course's reference and zoo files
(`checks.store.manifest`), keeps their verified bytes and loads the stored references into its own memory (the zygote
is forked first, so no reference ever sits in a worker's memory); a batch does this once and hands the result to each
submission's supervisor (`VerifiedCourse`), taken while the files' stats are unchanged. After every exercise it checks
those files again and restores any that changed (which fails that exercise). Per exercise it asks the zygote for a
fresh child (on a channel of that exercise's own, on which the zygote says when the child starts and ends), reads what
the child reports on a private pipe, applies the time limits (`checks.isolation.limits`) and kills the child's process
group when one passes, then judges the plain data it got back against the reference with the course's comparison engine
(`checks.judging.judge`). A death, a kill or garbage on the pipe fails that exercise with what happened; if the zygote
itself dies, a fresh one is started from a new interpreter for the exercises that remain. Several exercises may be
graded side by side, from several threads: see `Supervisor.grade_file` for the rules that keep each outcome the one it
gets alone.

Trusted: the fingerprints of the inputs (sent before the learner's module is imported) and the learner's output
as data. Not trusted beyond "it failed": everything the child says after the learner's code ran (audit results,
the validator's verdict): a learner who forges them can hide a changed model or a cache, never a wrong answer. So
the supervisor alone decides phases and limits (see `_Run._handle`), reads frames under `checks.isolation.protocol`'s bounds,
accepts from the child only "failed" (or "not started" for a stub it sees in the learner's file), and cleans every
message of control characters before a report sees it. It makes itself non-dumpable (`checks.isolation.sandbox`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
from hashlib import sha256
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from checks.isolation import sandbox
from checks.course import Course, CourseError, Day
from checks.isolation.limits import Limits, describe_end
from checks.isolation.protocol import (MAX_FRAME, CaseInputs, Control, Crash, Done, Fingerprints, Forbidden, Frame,
                                       Output, Phase, PhaseStart, Rejected, Result, ZygoteConfig, clean,
                                       control_message, decode, parse)
from checks.judging.judge import Raised, Rejection, judge
from checks.pipeline.grading import call_timeout_message
from checks.pipeline.inputs import InputsFingerprint, course_bug_message
from checks.pipeline.outcome import Outcome, Status, on_case, reason_given_at
from checks.store.manifest import file_contents, file_stats, restore_changed, verify_manifest
from checks.store.references import ReferenceStore, StaleReference, stale_reference_message
from checks.spec import Check
from curriculum.tools.paths import COURSE_ROOT

_EXIT_GRACE_S = 15.0
_WORKER_FEATURES = ("pid_namespace", "own_proc", "capabilities_dropped", "seccomp", "landlock", "landlock_abi")


class Supervisor:
    """Grades exercises of `days` of `course` in worker processes (see the module docstring)."""

    def __init__(self, course: Course, days: list[Day], device: str, *, limits: Limits | None = None,
                 forbid_reads: bool = False, expected_manifest: dict[str, str] | None = None,
                 worker_log: Path | None = None, worker_closes: list[int] | None = None,
                 zygote: "_Zygote | None" = None, prestarted: bool = False,
                 verified: "VerifiedCourse | None" = None) -> None:
        self.course, self.days, self.device = course, days, device
        self.limits = limits or Limits()
        self.forbid_reads = forbid_reads
        self.worker_log = worker_log
        self.worker_closes = list(worker_closes or [])
        self.started = time.monotonic()
        self._zygote: _Zygote | None = None
        self._zygote_lock = threading.RLock()  # exercises graded side by side share one zygote
        self._files_lock = threading.Lock()
        self._gate = _Gate()
        self._parallel = self.limits.parallel  # drops to 1 after an incident (see `grade_file`)
        self._incidents = 0  # course files restored, or the zygote lost, during an exercise
        self._closed = False
        self._unimportable: dict[tuple[int, str], str] = {}  # (day, file) -> the exercise that said why
        self._importable: set[tuple[int, str]] = set()  # (day, file) once one exercise got past importing it
        self.sandbox: dict[str, Any] = {}  # which isolation features held (see `state`)
        self._shared = zygote  # a warm parent shared with other supervisors (`checks.frontends.batch`): kept at close
        if zygote is None:  # first: the zygote must not inherit the references loaded below
            self._zygote = start_zygote(self._config(), fork=True, prestarted=prestarted)
        else:
            self._zygote = zygote
            zygote.use_log(worker_log)
        self.sandbox["non_dumpable"] = sandbox.harden_supervisor()  # no process of this user without CAP_SYS_PTRACE
        try:  # reads this one's memory
            if verified is not None and file_stats(course) == verified.stats:  # unchanged since it was verified
                self.manifest, self.contents, self.stores = verified.manifest, verified.contents, verified.stores
                self.stats = dict(verified.stats)
            else:
                fresh = verify_course(course, days, expected_manifest)
                self.manifest, self.contents, self.stores, self.stats = (fresh.manifest, fresh.contents,
                                                                         fresh.stores, fresh.stats)
        except BaseException:
            self.close()
            raise

    # ---- the zygote ------------------------------------------------------------------------------------------------
    def _config(self) -> ZygoteConfig:
        return zygote_config(self.course, self.days, self.device, self.limits, self.forbid_reads,
                             self.worker_log.parent if self.worker_log else None, self.worker_log)

    def _start_zygote(self, fork: bool) -> None:
        """Fork the zygote from this process (fast: torch is already imported), or, to replace one that died, start
        it from a fresh interpreter (this process then holds the references, which a fork would hand over)."""
        self._zygote = start_zygote(self._config(), fork)

    def state(self) -> dict[str, Any]:
        """Which isolation features held on this machine, for the report: the supervisor non-dumpable; the warm
        parent's user and network namespaces (`checks.isolation.sandbox.isolate_zygote`); and, as the last worker said before
        any learner code ran in it, its PID namespace and own /proc, capabilities dropped, the seccomp filter, and
        Landlock (with the kernel's ABI). A feature never tried (no exercise ran) is absent."""
        return dict(self.sandbox)

    def _note_zygote(self, zygote: "_Zygote") -> None:
        if zygote.sandbox is not None:
            self.sandbox.update({"user_namespace": "user namespace" in zygote.sandbox,
                                 "network_namespace": "no network" in zygote.sandbox})

    def _ready_zygote(self, deadline: float) -> "_Zygote | str":
        """The running zygote, waiting for it to be ready; or why there is none."""
        with self._zygote_lock:
            if self._closed:
                return "the grading session was closed"
            if self._zygote is None:
                self._start_zygote(fork=False)
            zygote = self._zygote
            assert zygote is not None
            why = zygote.wait_ready(max(1.0, deadline - time.monotonic()))
            if not why:
                self._note_zygote(zygote)
                return zygote
            self._stop_zygote(zygote)
            return f"the grading worker could not start: {why}"

    def _stop_zygote(self, zygote: "_Zygote | None" = None, closing: bool = False) -> None:
        """Stop the zygote (only if it is still `zygote`, when given: another exercise may have replaced it). A
        shared zygote is left running at close (its owner decides), and stopped when lost."""
        with self._zygote_lock:
            if self._zygote is not None and zygote in (None, self._zygote):
                if not (closing and self._zygote is self._shared):
                    self._zygote.kill()
                self._zygote = None

    def _lost_zygote(self, zygote: "_Zygote") -> None:
        """`zygote` died under a running exercise: an incident (see `grade_file`)."""
        self._incidents += 1
        self._stop_zygote(zygote)

    def close(self) -> None:
        """Stop the zygote and everything under it; exercises still running end as failed."""
        self._closed = True
        zygote = self._zygote
        if zygote is not None and zygote is not self._shared:
            zygote.send_kill()  # first, without the lock: an exercise waiting for it to start gives up at once
        with self._zygote_lock:
            self._stop_zygote(closing=True)

    # ---- grading ---------------------------------------------------------------------------------------------------
    def grade_file(self, day: Day, check: Check, learner: Path) -> Outcome:
        """Grade exercise `check` of `day` from the learner's file `learner` in a fresh worker.

        Exercises may be graded side by side, from several threads (`parallel` at a time). What one exercise does
        can then be noticed at another's end (a course file restored, the zygote lost): an exercise that ran beside
        another while such an incident happened is graded again, alone, and from then on every exercise runs alone,
        so each outcome is the one it gets when graded alone. An exercise stopped by its time limit while another
        ran beside it (which may have starved it of CPU) is graded again alone too. The first exercise of a file runs
        alone: if the file cannot be imported, that exercise says why and the others say where it was said."""
        key = (day.number, str(learner))
        outcome, suspect, incident = self._attempt(day, check, learner,
                                                   alone=lambda: self._parallel == 1 or key not in self._importable)
        if suspect:
            if incident:
                self._parallel = 1
            outcome, _, _ = self._attempt(day, check, learner, alone=lambda: True)
        return outcome

    def unimportable(self, day: int, learner: Path) -> str | None:
        """The exercise that said why day `day`'s file `learner` cannot be imported, or None while none has."""
        return self._unimportable.get((day, str(learner)))

    def _attempt(self, day: Day, check: Check, learner: Path,
                 alone: Callable[[], bool]) -> tuple[Outcome, bool, bool]:
        """(outcome with its duration, whether it must be graded again alone, whether for an incident)."""
        with self._gate.slot(alone) as slot:
            start, incidents = time.monotonic(), self._incidents
            outcome, ran, timed_out = self._run(day, check, learner)
            incident = self._incidents != incidents
            suspect = ran and slot.beside_another and (incident or timed_out) and not self._closed
            return dataclasses.replace(outcome, duration_s=round(time.monotonic() - start, 4)), suspect, incident

    def _run(self, day: Day, check: Check, learner: Path) -> tuple[Outcome, bool, bool]:
        """(outcome, whether the learner's code ran, whether a time limit of its own stopped it)."""
        limits = self.limits
        submission_deadline = self.started + limits.submission_s
        if time.monotonic() >= submission_deadline:
            return _failed(day, check, f"not graded: the whole submission's time limit of {limits.submission_s:g} s "
                           "(every exercise together) ran out before this exercise"), False, False
        first = self._unimportable.get((day.number, str(learner)))
        if first is not None:  # the reason is said once per day, at its first exercise
            return _failed(day, check, reason_given_at(day.number, first)), False, False
        for attempt in range(2):  # a zygote found dead before this exercise started is replaced, not blamed
            zygote = self._ready_zygote(min(submission_deadline, time.monotonic() + limits.setup_s))
            if isinstance(zygote, str):
                return Outcome(check.name, day.number, Status.ERROR, zygote), False, False
            run = _Run(self, day, check, zygote, submission_deadline)
            outcome = run.execute(learner)
            if not run.lost_before_start:
                break
        with self._files_lock:
            restored = restore_changed(self.course, self.manifest, self.contents, self.stats)
            if restored:  # something got past the worker's guard (e.g. native code): undo it, and fail the exercise
                self._incidents += 1
                self.stats = file_stats(self.course)
                outcome = _failed(day, check, f"your code changed the course's files ({', '.join(restored)}), which "
                                  "grading forbids; they were restored, and the other exercises are graded against the "
                                  "originals.")
        if run.import_failed():  # importing the same file would fail again: fail the day's other exercises at once
            self._unimportable[day.number, str(learner)] = check.name
        elif run.imported():
            self._importable.add((day.number, str(learner)))
        timed_out = bool(run.stopped_by) and run.phase in ("call", "audit") and \
            time.monotonic() < submission_deadline
        return outcome, True, timed_out


@dataclasses.dataclass
class VerifiedCourse:
    """The course's files as verified before any learner code ran: the manifest's hashes, the files' bytes (to
    restore them), their stats (`checks.store.manifest.file_stats`: an unchanged stat means unchanged bytes) and the
    days' stored references loaded into memory. Batch grading makes one per batch and hands it to every submission's
    supervisor, which takes it as its own when the files' stats still match, else verifies the files again."""

    manifest: dict[str, str]
    contents: dict[str, bytes]
    stats: dict[str, tuple[int, ...]]
    stores: dict[int, ReferenceStore]

    def refresh_stats(self, course: Course) -> bool:
        """After the files were restored: adopt their new stats if every file still holds its verified bytes (stats
        first, then the bytes, so a change made in between shows as a stat that no longer matches); whether it did."""
        stats = file_stats(course)
        if set(stats) != set(self.manifest):
            return False
        for key, stat in stats.items():
            if stat != self.stats.get(key):
                try:
                    data = (course.root / key).read_bytes()
                except OSError:
                    return False
                if sha256(data).hexdigest() != self.manifest[key]:
                    return False
        self.stats = stats
        return True


def verify_course(course: Course, days: list[Day], expected_manifest: dict[str, str] | None = None) -> VerifiedCourse:
    """Verify the manifest's files (against `expected_manifest`, default the stored manifest), keep their bytes and
    stats, and load the days' references. Raises CourseError when a file does not match."""
    stats = file_stats(course)
    contents = file_contents(course)
    manifest = verify_manifest(course, expected_manifest, contents)  # the bytes kept are the bytes verified
    now = file_stats(course)
    changed = [key for key in contents if now.get(key) != stats.get(key)]
    if changed:
        raise CourseError(f"course file {changed[0]} changed while it was being verified")
    stores = {day.number: ReferenceStore(day) for day in days}
    for store in stores.values():
        try:
            store.preload()  # into this process's memory now, before any learner code runs
        except StaleReference:
            pass  # reported per exercise, with the rebuild command
    return VerifiedCourse(manifest, contents, stats, stores)


class _Gate:
    """Admits exercises side by side, or one alone: `slot(alone)` waits until the exercise may start (`alone()` is
    asked again at each change, as what is known about the file grows). An exercise waiting to run alone holds back
    new ones, so it is not starved."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._running: list[_Slot] = []
        self._alone_running = False
        self._alone_waiting = 0

    @contextlib.contextmanager
    def slot(self, alone: Callable[[], bool]) -> Iterator["_Slot"]:
        with self._changed:
            solo = alone()
            self._alone_waiting += solo
            while self._alone_running or (solo and self._running) or (not solo and self._alone_waiting):
                self._changed.wait()
                now = alone()
                self._alone_waiting += now - solo
                solo = now
            self._alone_waiting -= solo
            slot = _Slot(beside_another=bool(self._running))
            for other in self._running:
                other.beside_another = True
            self._running.append(slot)
            self._alone_running = solo
        try:
            yield slot
        finally:
            with self._changed:
                self._running.remove(slot)
                self._alone_running = self._alone_running and not solo
                self._changed.notify_all()


@dataclasses.dataclass
class _Slot:
    beside_another: bool  # whether another exercise ran at any time while this one did


class _Zygote:
    """The supervisor's handle on a zygote: its pid, control socket and (when started by exec) its Popen."""

    def __init__(self, pid: int, control: socket.socket, process: subprocess.Popen | None) -> None:
        self.pid, self.control, self.process = pid, control, process
        self.ready = False
        self.reaped = False
        self.sandbox: list[str] | None = None  # what `checks.isolation.sandbox.isolate_zygote` said, once ready

    def set_ready(self, message: dict[str, Any]) -> None:
        self.ready = True
        self.sandbox = [str(item) for item in message.get("sandbox", [])]

    def wait_ready(self, timeout: float) -> str:
        """Wait for the zygote's "ready"; "" once ready, else why not."""
        if self.ready:
            return ""
        message = self.receive(timeout)
        if message is not None and message.get("kind") == Control.READY:
            self.set_ready(message)
            return ""
        return message.get("message", "") if message else "it did not start in time, or died starting"

    def use_log(self, log: Path | None) -> None:
        """Send what the children print from now on to `log` (another submission's log), its cap counted afresh."""
        fd = os.open(log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            socket.send_fds(self.control, [control_message(Control.LOG)], [fd])
        except OSError:
            pass  # a dead zygote: the first exercise finds out and replaces it
        finally:
            os.close(fd)

    def alive(self) -> bool:
        """Whether the zygote process still runs (it is this process's child)."""
        if self.reaped:
            return False
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        self.reaped = pid != 0
        return not self.reaped

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next control message, or None on timeout or death."""
        return _receive(self.control, timeout)

    def request(self, request: dict[str, Any]) -> socket.socket:
        """Send `request` with a fresh channel for it: the zygote says on it when the child starts and ends."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            socket.send_fds(self.control, [json.dumps(request).encode()], [theirs.fileno()])
        except OSError:
            mine.close()
            raise
        finally:
            theirs.close()
        return mine

    def send_kill(self) -> None:
        """SIGKILL to the zygote and its process group."""
        for target in (lambda: os.killpg(self.pid, signal.SIGKILL), lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass

    def kill(self) -> None:
        if not self.reaped:  # (a reaped pid may belong to another process by now)
            self.send_kill()
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.reaped = True
        self.control.close()


def zygote_config(course: Course, days: list[Day], device: str, limits: Limits, forbid_reads: bool,
                  reports: Path | None, log: Path | None, many: bool = False) -> ZygoteConfig:
    """What a zygote needs to know: the days it grades and how (`reports`: the folder of the batch's reports,
    protected and unreadable to learner code; `log`: where the children's prints go first; `many`: it grades many
    submissions, so its memory goes into huge pages, see `checks.isolation.zygote.collapse_into_huge_pages`)."""
    return ZygoteConfig(root=str(course.root), loader=course.model_loader, days=[day.number for day in days],
                        device=str(device), prebuild=not str(device).startswith("cuda"), threads=limits.threads,
                        memory_bytes=limits.memory_bytes, forbid_reads=forbid_reads,
                        protect=[str(COURSE_ROOT)] + ([str(reports)] if reports else []),
                        log=str(log) if log else None, log_bytes=limits.log_bytes, huge_pages=many)


def start_zygote(config: ZygoteConfig, fork: bool, prestarted: bool = False) -> _Zygote:
    """Start a zygote: forked from this process (fast: torch is already imported; call before this process holds
    anything a worker must not see, such as the references), or from a fresh interpreter; with `prestarted`, the one
    `checks.isolation.zygote.prestart` forked earlier, if there is one, is sent its config instead. Either way from a
    thread that lasts as long as this process (see `_in_a_lasting_thread`)."""
    from checks.isolation import zygote

    waiting = zygote.take_prestarted() if prestarted else None
    if waiting is not None:  # forked ahead (see `prestart`): it waits for its config
        pid, mine = waiting
        try:
            mine.send(config.to_json())
        except OSError:
            pass  # it died: the first exercise finds out and replaces it
        return _Zygote(pid, mine, None)
    return _in_a_lasting_thread(lambda: _start(config, fork))


def _start(config: ZygoteConfig, fork: bool) -> _Zygote:
    from checks.isolation import zygote

    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if fork:
        pid = os.fork()
        if pid == 0:
            try:
                mine.close()
                zygote.zygote_main(config, theirs)
            finally:
                os._exit(0)
        process: subprocess.Popen | None = None
    else:
        python_path = os.pathsep.join(filter(None, [str(COURSE_ROOT), os.environ.get("PYTHONPATH")]))
        process = subprocess.Popen([sys.executable, "-m", "checks.isolation.worker", str(theirs.fileno())],
                                   pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, "PYTHONPATH": python_path, "HF_HUB_OFFLINE": "1"})
        pid = process.pid
        mine.send(config.to_json())
    theirs.close()
    return _Zygote(pid, mine, process)


_T = TypeVar("_T")
_lasting: tuple[int, "queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future]]"] | None = None
_lasting_lock = threading.Lock()


def _in_a_lasting_thread(call: Callable[[], _T]) -> _T:
    """`call()`, run by a thread that lasts as long as this process: this one if it is the main thread, else one
    started for this (once per process). A zygote dies with the thread that started it, not with its process
    (PR_SET_PDEATHSIG follows the parent thread), and exercises are graded from threads that end when their work runs
    out (`checks.isolation.lookahead`): a zygote one of them started to replace a lost one was killed under the
    exercise graded next, which was failed as if its code had killed it."""
    global _lasting
    if threading.current_thread() is threading.main_thread():
        return call()
    with _lasting_lock:
        if _lasting is None or _lasting[0] != os.getpid():  # none yet, or it stayed in the process this was forked from
            calls: queue.SimpleQueue = queue.SimpleQueue()
            threading.Thread(target=_serve_calls, args=(calls,), name="course-zygote-starter", daemon=True).start()
            _lasting = (os.getpid(), calls)
        calls = _lasting[1]
    done: concurrent.futures.Future = concurrent.futures.Future()
    calls.put((call, done))
    return done.result()


def _serve_calls(calls: "queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future]]") -> None:
    while True:
        call, done = calls.get()
        try:
            done.set_result(call())
        except BaseException as error:  # handed to the caller
            done.set_exception(error)


def _receive(channel: socket.socket, timeout: float, fds: bool = False) -> dict[str, Any] | None:
    """The next message on `channel` (with its file descriptors under "fds"), or None on timeout or when the other
    end is gone."""
    readable, _, _ = select.select([channel], [], [], max(0.0, timeout))
    if not readable:
        return None
    try:
        if fds:
            data, received, _, _ = socket.recv_fds(channel, 1 << 16, 1)
        else:
            data, received = channel.recv(1 << 16), []
    except OSError:
        return None
    if not data:
        return None
    message = json.loads(data)
    message["fds"] = received
    return message


class _Run:
    """One exercise in one child: reads its frames, keeps its deadlines, and turns what happened into an Outcome."""

    def __init__(self, supervisor: Supervisor, day: Day, check: Check, zygote: _Zygote, submission_deadline: float):
        self.supervisor, self.day, self.check, self.zygote = supervisor, day, check, zygote
        self.limits = supervisor.limits
        self.submission_deadline = submission_deadline
        self.phase, self.case = "setup", ""
        self.fingerprints: dict[str, CaseInputs | str] | None = None
        self.results: dict[str, tuple[Any, str | None, Status]] = {}  # case -> (output, complaint, whose fault)
        self.outputs: dict[str, Any] = {}  # case -> the output its call returned, fixed at the call's end
        self.mistakes: dict[str, dict[str, Any]] = {}  # case -> the stored outputs of the check's mistakes
        self.rejection: Rejected | None = None
        self.forbidden: list[str] = []
        self.crash = ""
        self.done = False
        self.stopped_by = ""  # the limit that stopped the child, in words
        self.course_problem: Outcome | None = None
        self.status: int | None = None
        self.zygote_died = False
        self.expected: dict[str, Any] = {}
        self.facts: dict[str, Any] = {}  # per case, what a random-draw contract's judge needs (see checks.judging.contracts)
        self.lost_before_start = False
        self.frames = 0
        self.called: set[str] = set()
        self.call_started = 0.0

    def execute(self, learner: Path) -> Outcome:
        limits, check = self.limits, self.check
        now = time.monotonic()
        cap = now + limits.setup_s + limits.import_s + len(check.cases) * (check.timeout_s + limits.audit_s)
        self.exercise_deadline = min(cap, self.submission_deadline)
        self.deadline = now + limits.setup_s
        self.learner = learner
        request = {"kind": Control.RUN.value, "day": self.day.number, "exercise": check.name, "learner": str(learner)}
        try:
            self.channel = self.zygote.request(request)
        except OSError:
            return self._zygote_lost()
        try:
            started = _receive(self.channel, limits.setup_s, fds=True)
            if started is None or started.get("kind") != Control.STARTED or not started["fds"]:
                return self._zygote_lost()
            self.pid, pipe = int(started["pid"]), started["fds"][0]
            try:
                self._watch(pipe)
            finally:
                os.close(pipe)
        finally:
            self.channel.close()
        return self._outcome()

    def imported(self) -> bool:
        """Whether the learner's module was imported (a case was called)."""
        return bool(self.results) or self.phase in ("call", "audit")

    def import_failed(self) -> bool:
        """Whether importing the learner's module failed (raised, hung or killed the worker), so no case ran. The
        worker's parent lost meanwhile (e.g. to the kernel's out-of-memory killer) says nothing about the module."""
        if self.results or self.course_problem is not None or self.forbidden or self.zygote_died:
            return False
        if self.rejection is not None:
            return self.rejection.import_error
        return self.phase == "import"

    def _zygote_lost(self) -> Outcome:
        self.lost_before_start = True
        self.supervisor._stop_zygote(self.zygote)
        return _failed(self.day, self.check, f"the grading worker died before {self.check.name} started (killed by "
                       "the previous exercise's code?); a fresh one grades the rest")

    # ---- reading the child -----------------------------------------------------------------------------------------
    def _watch(self, pipe: int) -> None:
        buffer = bytearray()
        pipe_open, killed_at = True, None
        while self.status is None:
            now = time.monotonic()
            deadline = min(self.deadline, self.exercise_deadline)
            if killed_at is None and now >= deadline:
                self._stop(self._limit_message(now))
                killed_at = now
            if killed_at is not None and now >= killed_at + _EXIT_GRACE_S:  # the zygote does not answer
                self.zygote_died = True
                self.supervisor._lost_zygote(self.zygote)
                return
            wait = (killed_at + _EXIT_GRACE_S if killed_at is not None else deadline) - now
            watched = [self.channel] + ([pipe] if pipe_open else [])
            readable, _, _ = select.select(watched, [], [], max(0.0, min(wait, 1.0)))
            if pipe in readable:
                chunk = os.read(pipe, 1 << 20)
                if not chunk:
                    pipe_open = False
                buffer += chunk
                if not self._frames(buffer) and killed_at is None:
                    self._stop("")
                    self.crash = self.crash or "the worker sent garbled data (its messages were overwritten?)"
                    killed_at = time.monotonic()
            if self.channel in readable:
                message = _receive(self.channel, 0)
                if message is None:
                    self.zygote_died = True
                    self._stop("")
                    self.supervisor._lost_zygote(self.zygote)
                    return
                if message.get("kind") == Control.EXITED:
                    self.status = int(message["status"])
        while pipe_open:  # the zygote killed the child's leftovers before reporting: the pipe ends now
            readable, _, _ = select.select([pipe], [], [], 2.0)
            if not readable:
                break
            chunk = os.read(pipe, 1 << 20)
            if not chunk:
                break
            buffer += chunk
            self._frames(buffer)

    def _stop(self, why: str) -> None:
        if why and not self.stopped_by:
            self.stopped_by = why
        for target in (lambda: os.killpg(self.pid, signal.SIGKILL), lambda: os.kill(self.pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass

    def _frames(self, buffer: bytearray) -> bool:
        """Handle every complete frame in `buffer` (consumed); False when the data cannot be frames (too large,
        too many, or not what `checks.isolation.protocol` allows)."""
        while len(buffer) >= 8:
            size = int.from_bytes(buffer[:8], "big")
            if size > MAX_FRAME:
                return False
            if len(buffer) < 8 + size:
                return True
            frame = bytes(buffer[8:8 + size])
            del buffer[:8 + size]
            self.frames += 1
            if self.frames > 4 * len(self.check.cases) + 32:
                return False
            try:
                message = parse(decode(frame))
            except Exception:  # FrameError, or anything the bounds did not foresee: garbage either way
                return False
            if message is not None:  # None: a message of no frame the protocol allows, ignored
                self._handle(message)
        return True

    def _handle(self, frame: Frame) -> None:
        """One frame. The supervisor alone decides the phases and their limits: an announcement is taken only in
        the order the worker makes them (import once; then per case, in the check's order, its call, then its
        audit) and never restarts a limit; everything after the import may be forged by the learner's code."""
        now, check, limits = time.monotonic(), self.check, self.limits
        cases = list(check.cases)
        following = cases[len(self.results)] if len(self.results) < len(cases) else None
        match frame:
            case Fingerprints() if self.fingerprints is None and self.phase == "setup":
                self.fingerprints = frame.cases
                self._check_references()
            case PhaseStart(phase=Phase.IMPORT) if self.phase == "setup" and self.fingerprints:
                self.phase, self.deadline = Phase.IMPORT.value, now + limits.import_s
                held = frame.sandbox or {}  # sent before the learner's module is imported: trusted
                self.supervisor.sandbox.update({key: held[key] for key in _WORKER_FEATURES if key in held})
            case PhaseStart(phase=Phase.CALL) if frame.case == following \
                    and self.phase in (Phase.IMPORT.value, Phase.AUDIT.value) and frame.case not in self.called:
                self.phase, self.case, self.call_started = Phase.CALL.value, frame.case, now
                self.called.add(frame.case)
                self.deadline = now + check.timeout_s
            case Output() | PhaseStart(phase=Phase.AUDIT) if self.phase == Phase.CALL.value \
                    and frame.case == self.case:
                # the call's end: its output, if any, is fixed now (one per case, taken only while its call runs), so
                # an early forged end gains no time: whatever the call computes after it is never graded
                if isinstance(frame, Output):  # with `raised`: the call raised on a case that expects an exception
                    self.outputs[frame.case] = (Raised(frame.raised, frame.raised_message or "") if frame.raised
                                                else frame.output)
                self.phase = Phase.AUDIT.value
                self.deadline = min(now + limits.audit_s, self.call_started + check.timeout_s + limits.audit_s)
            case Result() if frame.case == self.case and self.phase == Phase.AUDIT.value \
                    and frame.case not in self.results:
                case = frame.case
                if case not in self.outputs:  # the worker sends a result only after an output: this one is forged
                    if self.rejection is None:
                        self.rejection = Rejected(case, Status.FAILED, (
                            f"{check.name}'s end was announced before it returned (a forged message): its output was "
                            "not taken, and it is graded as not returning in time"))
                    return
                self.results[case] = (self.outputs[case], frame.complaint, frame.complaint_status)
            case Rejected() if self.rejection is None and self.phase != "setup":
                self.rejection = dataclasses.replace(frame, case=frame.case if frame.case in check.cases else "")
            case Forbidden() if len(self.forbidden) < 8:
                self.forbidden.append(clean(frame.what, 2000))
            case Crash() if not self.crash:
                self.crash = clean(frame.message)
            case Done():
                self.done = True

    def _check_references(self) -> None:
        """As soon as the fingerprints arrive: a course bug or a stale reference stops the child before the
        learner's module is imported."""
        store = self.supervisor.stores[self.day.number]
        for case in self.check.cases:
            entry = (self.fingerprints or {}).get(case)
            if not isinstance(entry, CaseInputs):  # the builder's traceback
                self.course_problem = Outcome(self.check.name, self.day.number, Status.ERROR,
                                              course_bug_message(self.check.name, case, entry or "no fingerprint"),
                                              case=case)
                break
            try:
                fingerprint = InputsFingerprint(entry.hash, entry.floats)
                self.expected[case] = store.expected(self.check.name, case, fingerprint)
                self.mistakes[case] = store.mistakes(self.check.name, case)
                self.facts[case] = entry.facts
            except StaleReference as error:
                self.course_problem = Outcome(self.check.name, self.day.number, Status.STALE_REFERENCE,
                                              stale_reference_message(error, self.day), case=case)
                break
        if self.course_problem is not None:
            self._stop("")

    def _limit_message(self, now: float) -> str:
        name, check, limits = self.check.name, self.check, self.limits
        if now >= self.submission_deadline:
            return (f"the whole submission's time limit of {limits.submission_s:g} s ran out while {name} ran; it was "
                    "stopped")
        if self.phase == "import":
            return (f"importing your module did not finish within {limits.import_s:g} s (the import time limit) "
                    "and was stopped: code that runs at import (a decorator, a default argument, a class body, a "
                    "module-level assignment) never returns?")
        if self.phase == "call":
            return call_timeout_message(check)
        if self.phase == "audit":
            return (f"{name} returned, but the checks that follow (model and input audits, reading the output) did "
                    f"not finish within {limits.audit_s:g} s and were stopped: something your code left behind (a "
                    "patched method of the model, a hook, a thread holding a lock) hangs")
        if now >= self.exercise_deadline:
            return (f"{name} used up the exercise's whole time budget and was stopped (its worker kept announcing "
                    "new steps)")
        return f"the grading worker did not get {name} started within {limits.setup_s:g} s"

    # ---- the verdict -----------------------------------------------------------------------------------------------
    def _outcome(self) -> Outcome:
        day, check = self.day, self.check
        if self.course_problem is not None:
            return self.course_problem
        if self.forbidden:
            return _failed(day, check, f"your code {self.forbidden[0]}: instructor grading does not allow reading "
                           "the course's solutions or stored reference outputs, so this exercise fails.")
        for case in check.cases:
            if case not in self.results:
                return self._unfinished(case)
            output, complaint, complaint_status = self.results[case]
            try:
                judge(output, self.expected[case], dataclasses.replace(check, validate=None), {},
                      mistakes=self.mistakes.get(case), facts=self.facts.get(case), case=case)
                if complaint:  # said after the learner's code ran, so never the course's fault
                    if complaint_status is Status.ERROR:
                        complaint = f"{complaint}\n(if your output is right, tell the course's authors)"
                    raise Rejection(Status.FAILED, complaint, check.hint)
            except Rejection as rejection:
                return _outcome(day, check, case, rejection.status, rejection.message, rejection.hint)
        return Outcome(check.name, day.number, Status.PASSED)

    def _not_written(self) -> bool:
        """Whether the learner's file (read, never run) leaves this exercise, or a function it calls, as the stub:
        the only case where the worker may say "not started"."""
        from checks.pipeline.learner import written_exercises

        names = [self.check.name] + [other.name for other in self.day.checks if other.name != self.check.name]
        written = written_exercises(self.learner, names)
        if self.check.name not in written:
            return True
        message = self.rejection.message if self.rejection else ""
        return any(f"calls {name}," in message for name in names if name not in written)

    def _unfinished(self, case: str) -> Outcome:
        """Why case `case` has no result: a rejection, a limit, a crash or a death."""
        day, check = self.day, self.check
        if self.stopped_by:
            return _outcome(day, check, self.case or case, Status.FAILED, self.stopped_by, check.hint)
        if self.rejection is not None:  # said after the learner's code ran: "not started" only for a real stub
            status = Status.FAILED
            if self.rejection.status is Status.NOT_STARTED and self._not_written():
                status = Status.NOT_STARTED
            hint = check.hint if status is Status.FAILED and not self.rejection.import_error else ""
            return _outcome(day, check, self.rejection.case, status, self.rejection.message, hint)
        where = f" on input case {self.case!r}" if self.case and len(check.cases) > 1 else ""
        doing = {"setup": "before importing your module", "import": "while importing your module",
                 "call": f"while {check.name} ran{where}", "audit": f"after {check.name} returned{where}"}[self.phase]
        if self.zygote_died:
            return _failed(day, check, f"the grading worker's parent process died {doing} (killed by your code?); "
                           "a fresh worker grades the remaining exercises", self.case)
        if self.crash:
            return _failed(day, check, f"the grading worker failed {doing}:\n{self.crash}", self.case)
        how = describe_end(self.status) if self.status is not None else "ended"
        return _failed(day, check, f"the worker process running your code {how}, {doing}. An exercise must "
                       "return its result; it may not end or crash the process.", self.case)


def _outcome(day: Day, check: Check, case: str, status: Status, message: str, hint: str = "") -> Outcome:
    message, hint = clean(message), clean(hint)  # much of it comes from the worker: fit for terminal, JSON, JUnit
    message = on_case(message, case, len(check.cases), status)
    return Outcome(check.name, day.number, status, message, hint, case)


def _failed(day: Day, check: Check, message: str, case: str = "") -> Outcome:
    return _outcome(day, check, case, Status.FAILED, message)
