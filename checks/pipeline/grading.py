"""Grade one learner function against its stored references: the logic shared by pytest and `checks.check`.

One grading call runs every input case of the check, in order, and stops at the first that fails. Per case: build
the inputs on pristine models; fetch the reference and check it is fresh for those inputs (stale or missing ->
"stale reference"); call the learner's function under a timeout; then audit: weights or hooks changed, inputs
mutated, and judge the output (`checks.judging.judge`). Whatever the learner's function does, the models are restored
afterwards, so each exercise fails or passes on its own.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import traceback
from typing import Any, Callable, Iterator

import torch

from checks.pipeline.budgets import BudgetExceeded, ForwardPasses
from checks.course import Course, Day
from checks.pipeline.env import Env, global_state, global_state_changes
from checks.judging.judge import Rejection, case_facts, first_difference, graded_callable, judge, snapshot
from checks.pipeline.outcome import Outcome, Status, on_case
from checks.pipeline.inputs import CourseBug, InputsCache, InputsFingerprint
from checks.store.references import ReferenceStore, StaleReference, stale_reference_message
from checks.spec import Check
from curriculum.tools.paths import CHECKS_DIR

_CHECKS_DIR = str(CHECKS_DIR)


class LearnerTimeout(Exception):
    """Raised inside the learner's function when it runs past the check's timeout."""


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class Grader:
    """Grades exercises of one course on one device, sharing one env (pristine models) and the loaded references."""

    def __init__(self, course: Course, device: str | torch.device | None = None) -> None:
        self.course = course
        self.env = Env(device or default_device(), lambda name: course.load_model_function()(name))
        self._stores: dict[int, ReferenceStore] = {}
        self._inputs = InputsCache()

    def store(self, day: Day) -> ReferenceStore:
        if day.number not in self._stores:
            self._stores[day.number] = ReferenceStore(day)
        return self._stores[day.number]

    def grade_function(self, function: Callable[..., Any] | None, day: Day, check: Check, missing: str = "") -> Outcome:
        """Grade `function` (the learner's) on every case of `check`. `function` None means it is missing;
        `missing` says why."""
        start = time.perf_counter()
        case = ""
        try:
            if function is None:
                raise Rejection(Status.FAILED, missing or f"there is no function {check.name!r} to grade")
            for case in check.cases:
                self._grade_case(function, day, check, case)
            status, message, hint, case = Status.PASSED, "", "", ""
        except Rejection as rejection:
            status, message, hint = rejection.status, rejection.message, rejection.hint
            message = on_case(message, case, len(check.cases), status)
        return Outcome(check.name, day.number, status, message, hint, case, round(time.perf_counter() - start, 4))

    def _grade_case(self, function: Callable[..., Any], day: Day, check: Check, case: str) -> None:
        try:
            built = self._inputs.build(self.env, check, case)
        except CourseBug as bug:
            raise Rejection(Status.ERROR, str(bug)) from None
        inputs = built.inputs
        expected = self._expected(day, check, case, built.fingerprint)
        facts = case_facts(check, inputs)
        passes = ForwardPasses(check.forward_passes)
        actual = call_learner(graded_callable(function, check, case), check, inputs, self.env, alarm=True,
                              passes=passes)
        judge(actual, expected, check, inputs, mistakes=self.store(day).mistakes(check.name, case), facts=facts,
              case=case)
        over_budget = passes.complaint(check.name)
        if over_budget:
            raise Rejection(Status.FAILED, over_budget, check.hint)

    def _expected(self, day: Day, check: Check, case: str, fingerprint: InputsFingerprint) -> Any:
        try:
            return self.store(day).expected(check.name, case, fingerprint)
        except StaleReference as error:
            raise Rejection(Status.STALE_REFERENCE, stale_reference_message(error, day)) from None


def call_learner(function: Callable[..., Any], check: Check, inputs: dict[str, Any], env: Env, *, alarm: bool,
                 after_call: Callable[[], None] | None = None, passes: ForwardPasses | None = None) -> Any:
    """Call the learner's function on pristine models; audit what it changed (weights, hooks, inputs); return its
    output or raise a Rejection saying what went wrong. Shared by the in-process grader and the grading worker.

    alarm: also stop the call with SIGALRM after `check.timeout_s` (in-process only: code can disable it, so the
    worker relies on its supervisor's kill instead). after_call: told when the call is over and the audits begin.
    passes: counts the call's forward passes against `check.forward_passes` (`checks.pipeline.budgets`); the caller asks
    it for its complaint once the output is judged, so that a wrong answer is reported as wrong first.
    """
    saved = snapshot(inputs)
    env.prepare()
    state = global_state()
    passes = passes or ForwardPasses(check.forward_passes)
    try:
        with _time_limit(check.timeout_s if alarm else 0), passes:
            actual = function(**inputs)
    except NotImplementedError as error:
        if _raised_by_library(error, function):
            raise Rejection(Status.FAILED, f"{check.name} raised:\n{_learner_traceback(error)}",
                            check.hint) from None
        raiser = traceback.extract_tb(error.__traceback__)[-1].name
        if raiser != check.name:
            raise Rejection(Status.NOT_STARTED, f"{check.name} calls {raiser}, which still raises "
                            f"NotImplementedError: fill in {raiser} first.") from None
        raise Rejection(Status.NOT_STARTED,
                        f"{check.name} still raises NotImplementedError: fill in its body.") from None
    except BudgetExceeded:
        raise Rejection(Status.FAILED, passes.complaint(check.name) or "", check.hint) from None
    except LearnerTimeout:
        raise Rejection(Status.FAILED, call_timeout_message(check)) from None
    except SystemExit as error:
        raise Rejection(Status.FAILED, f"{check.name} tried to end the program (sys.exit({error.code!r}) or "
                        "raise SystemExit): an exercise must return its result, never exit.", check.hint) from None
    except KeyboardInterrupt:
        raise Rejection(Status.FAILED, f"{check.name} raised KeyboardInterrupt: an exercise must return its "
                        "result.", check.hint) from None
    except BaseException as error:
        raise Rejection(Status.FAILED, f"{check.name} raised {type(error).__name__}:\n"
                        f"{_learner_traceback(error)}", check.hint) from None
    finally:
        if after_call is not None:
            after_call()
        problems = env.audit()  # always: the models are restored even when the call failed
    leaked = global_state_changes(state, global_state())
    if leaked:
        problems.append(leaked)
    mutated = first_difference(inputs, saved, "")
    if mutated is not None:
        problems.append(f"your function modified its input {mutated!r} in place: work on a copy (e.g. "
                        "`x.clone()`), never on the caller's tensors.")
    if problems:
        raise Rejection(Status.FAILED, " ".join(problems))
    return actual


def call_timeout_message(check: Check) -> str:
    """What a call stopped by the exercise's time limit is reported as (in process and by the supervisor alike)."""
    return (f"{check.name} did not return within {check.timeout_s:g} s (the exercise's time limit per input case) "
            "and was stopped: an infinite loop, or a loop that should be a batched tensor operation?")


# ---- timeouts --------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise LearnerTimeout in the running code after `seconds` (SIGALRM: Unix main thread only; else no limit)."""
    if seconds <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise LearnerTimeout()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---- tracebacks ------------------------------------------------------------------------------------------------------
def _learner_traceback(error: BaseException) -> str:
    """The traceback from the learner's function inwards: the grader's own frames are dropped."""
    frames = traceback.extract_tb(error.__traceback__)
    kept = [frame for frame in frames if not frame.filename.startswith(_CHECKS_DIR)]
    summary = traceback.StackSummary.from_list(kept)
    lines = ["Traceback (most recent call last):\n", *summary.format(),
             *traceback.format_exception_only(type(error), error)]
    return "".join(lines).rstrip()


def _raised_by_library(error: BaseException, function: Callable[..., Any]) -> bool:
    """Whether a NotImplementedError is a real error rather than a stub: "not started" needs the innermost frame to
    be a `raise NotImplementedError` line outside installed libraries (torch's own NotImplementedError comes from C
    code, i.e. from whatever learner line called it)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return True
    innermost = frames[-1]
    learner_file = getattr(getattr(function, "__code__", None), "co_filename", None)
    in_library = innermost.filename != learner_file and any(
        part in innermost.filename for part in ("site-packages", "dist-packages"))
    line = (innermost.line or "").strip()
    return in_library or bool(line) and not line.startswith("raise NotImplementedError")
