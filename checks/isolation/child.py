"""One exercise in a fresh fork of the zygote (`checks.isolation.zygote`): the only process that runs learner code.

The child:
1. has left the zygote's process group (the supervisor kills the whole group on a limit) and closed the zygote's
   sockets (its own channel and the other children's);
2. caps its address space (RLIMIT_AS), sets torch's threads, and installs an audit hook (`checks.isolation.guard`)
   that no code can remove: no writes to the course's files, and in instructor grading no reads of the solutions or
   stored references; then drops its capabilities, installs the seccomp filter (`checks.isolation.seccomp`) and
   Landlock (`checks.isolation.sandbox`);
3. sends the fingerprints of its inputs (computed before any learner code ran) and which sandbox features held,
   imports the learner's module, calls the exercise on every case, sends back each output as plain data
   (`checks.isolation.protocol.to_plain`) the moment the call returns (which ends the call's time limit), then
   audits models and inputs and runs the check's validator, each step announced so the supervisor can apply the
   right time limit;
4. ends with `os._exit`: no atexit hook, no finaliser of the learner's runs in it.

Every exercise runs in a fresh fork of the untouched zygote, so nothing one exercise does (hooks, patched attributes,
threads, torch's global state, config flags) reaches another.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Callable

from checks.isolation import sandbox
from checks.isolation.guard import CourseFileGuard
from checks.isolation.protocol import (MAX_MESSAGE, CaseInputs, Channel, Crash, Done, Fingerprints, FrameError,
                                       NotPlain, Output, Phase, PhaseStart, Rejected, Result, to_plain)
from checks.pipeline.outcome import Status
from checks.isolation.seccomp import forbid_file_changes_and_signals

HELD: dict[str, bool | int] = {}  # in a child: which of `checks.isolation.sandbox`'s features held for it


def build_case(env: Any, check: Any, case: str) -> tuple[Any, Any] | str:
    """(inputs, fingerprint) of one input case, or the traceback of a builder that crashed (a course bug)."""
    from checks.pipeline.inputs import CourseBug, build_inputs

    try:
        built = build_inputs(env, check, case)
    except CourseBug as bug:
        return bug.details
    return built.inputs, built.fingerprint


class Child:
    """One exercise in a fresh fork: see steps 1-4 of the module docstring."""

    def __init__(self, zygote: Any, request: dict[str, Any], channel: Channel) -> None:
        self.zygote = zygote
        self.request = request
        self.channel = channel

    def run(self) -> None:
        try:
            self._run()
        except BaseException:  # anything not attributed to the learner's call: say it rather than vanish
            try:
                self.channel.send(Crash(traceback.format_exc()[-4000:]))
            except BaseException:
                pass

    def _run(self) -> None:
        import resource

        import torch

        from checks.pipeline.budgets import ForwardPasses
        from checks.pipeline.grading import call_learner
        from checks.judging.judge import Raised, Rejection, case_facts, graded_callable, validation_complaint
        from checks.pipeline.learner import (LearnerModuleError, explain_name_error, load_module,
                                             missing_function_message, wrong_day_error)

        config, zygote = self.zygote.config, self.zygote
        day = zygote.days[self.request["day"]]
        check = day.check(self.request["exercise"])
        limit = _address_space() + config.memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        torch.set_num_threads(max(1, config.threads))

        built = {case: zygote.prebuilt.get((check.name, case)) or build_case(zygote.env, check, case)
                 for case in check.cases}
        self.channel.send(Fingerprints({
            case: CaseInputs(item[1].hash, item[1].floats, _facts(check, item[0], case_facts))
            if isinstance(item, tuple) else item for case, item in built.items()}))
        if any(isinstance(item, str) for item in built.values()):
            return

        learner = Path(self.request["learner"])
        roots, forbidden, unreadable = zygote.confinement(learner)
        CourseFileGuard(roots, forbidden if config.forbid_reads else [], self.channel).install()
        HELD["capabilities_dropped"] = sandbox.drop_capabilities()
        HELD["seccomp"] = forbid_file_changes_and_signals()
        HELD["landlock"] = sandbox.restrict_files(unreadable if config.forbid_reads else [], [learner])
        HELD["landlock_abi"] = sandbox.landlock_abi()

        self.channel.send(PhaseStart(Phase.IMPORT, sandbox=dict(HELD)))  # what held: said before any learner code
        try:
            module = load_module(learner, zygote.compiled(learner))
            wrong_day = wrong_day_error(module, day, zygote.course)
            if wrong_day is not None:
                raise wrong_day
        except LearnerModuleError as error:
            self.channel.send(Rejected("", Status.FAILED, _short(error), import_error=True))
            return
        except BaseException as error:
            self.channel.send(Rejected("", Status.FAILED, f"importing {self.request['learner']} raised "
                                       f"{type(error).__name__}: {_short(error)}", import_error=True))
            return
        function = module.__dict__.get(check.name)
        if not callable(function):
            self.channel.send(Rejected("", Status.FAILED, missing_function_message(module, check.name)))
            return
        for case, (inputs, _) in built.items():
            self.channel.send(PhaseStart(Phase.CALL, case))
            returned: list[Any] = []
            committed: dict[str, Any] = {}

            def graded(_call: Callable[..., Any] = graded_callable(function, check, case), **arguments: Any) -> Any:
                returned.append(_call(**arguments))
                return returned[-1]

            def commit(case: str = case) -> None:
                """The call is over: its output goes to the supervisor now, before the audits, and ends the call's
                phase (what the learner's code does after this cannot change the output graded)."""
                if not returned:  # it raised: the rejection follows the audits
                    self.channel.send(PhaseStart(Phase.AUDIT, case))
                    return
                actual = returned[-1]
                raised = actual if isinstance(actual, Raised) else None  # a documented exception, for the judge
                try:
                    committed["output"] = None if raised else to_plain(actual)
                    self.channel.send(Output(case, committed["output"], raised.names if raised else None,
                                             raised.message[:500] if raised else None))
                except (NotPlain, FrameError) as error:
                    committed["error"] = error
                    self.channel.send(PhaseStart(Phase.AUDIT, case))

            try:
                passes = ForwardPasses(check.forward_passes)
                actual = call_learner(graded, check, inputs, zygote.env, alarm=False, after_call=commit, passes=passes)
                raised = actual if isinstance(actual, Raised) else None
                if isinstance(committed.get("error"), NotPlain):
                    raise committed["error"]
                if isinstance(committed.get("error"), FrameError):
                    self.channel.send(Rejected(case, Status.FAILED, f"your output is too large to grade: "
                                               f"{committed['error']}", check.hint))
                    return
                output = committed.get("output")
            except Rejection as rejection:
                message = _short(rejection.message)
                if "MemoryError" in message or "can't allocate memory" in message:
                    message += (f"\n(each grading worker may allocate at most {config.memory_bytes / 2**30:g}"
                                " GiB: the memory limit)")
                if rejection.status.value == "failed":
                    message = explain_name_error(module, message)
                self.channel.send(Rejected(case, rejection.status, _short(message), rejection.hint))
                return
            except NotPlain as error:
                self.channel.send(Rejected(case, Status.FAILED, str(error), check.hint))
                return
            complaint, status = passes.complaint(check.name), Status.FAILED  # said once the output is judged right
            if raised is None and complaint is None:
                complaint, status = validation_complaint(check, output, inputs)
            self.channel.send(Result(case, _short(complaint) if complaint else None, status))
        self.channel.send(Done())


def _facts(check: Any, inputs: dict[str, Any], case_facts: Any) -> Any:
    """For a check with a random-draw contract, plain data about the inputs (computed before any learner code runs,
    for the supervisor's judge); else None."""
    return None if check.contract is None else to_plain(case_facts(check, inputs), "the contract's facts")


def _short(text: Any) -> str:
    """`text` cut to what the supervisor shows (a 100 MB exception message never leaves the worker)."""
    try:
        text = text if isinstance(text, str) else str(text)
    except BaseException:
        return "(a message that could not be turned into text)"
    return text if len(text) <= 2 * MAX_MESSAGE else text[:2 * MAX_MESSAGE] + "\n... (cut)"


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0
