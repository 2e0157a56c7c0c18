"""Hostile learners: each case is the fixture course's day-1 solution with one exercise made hostile (raising,
exiting, hanging, dying, lying about its type, leaking state, tampering with the course, forging the report,
cheating). Each is graded by one run of the grader, and each asserts: the hostile exercise fails with a message that
says what happened; every other exercise still passes; the total counts every exercise; the exit code; no course file
changed; the report is the supervisor's (it agrees with pytest's own outcomes and the table).
"""

from __future__ import annotations

import csv
import hashlib
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from checks.__main__ import main as checks_main
from curriculum.tools.paths import COURSE_ROOT as REPO_ROOT
from support import READ_ANOTHER_PROCESS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EXERCISES = ("attention_pattern", "mean_logit", "count_repeats", "describe_shape", "head_summary",
             "distinct_tokens", "slow_sum")
LIMITS = "import_s=3 audit_s=4 memory_gb=1"
TIME_LIMIT = "did not return within 1 s (the exercise's time limit per input case)"
GUARD = "grading forbids changing the course's files"


@dataclass(frozen=True)
class Hostile:
    """A hostile version of `target` (appended to the solution, so its `def` wins); `expect`: fragments of the
    message; `all_fail`: the hostility is at import, so every exercise fails with the same message."""

    target: str
    code: str
    expect: tuple[str, ...]
    all_fail: bool = False
    instructor: bool = False  # graded with `python -m checks grade` (reads of solutions/references forbidden)
    absent: tuple[str, ...] = ()  # what the message must not hold


# a thief below returns the right answer only when its attack worked: a pass is a false pass
_RIGHT = "int((tokens[:, 1:] == tokens[:, :-1]).sum())"
_FORGE = """
import gc, os
from checks.isolation.protocol import encode
class _Forger:
    def send(self, **message):  # any message, written on the worker's result pipe as a frame
        os.write(next(o for o in gc.get_objects() if type(o).__name__ == "Channel").fd, encode(message))
def _channel():
    return _Forger()
"""
_READ_ANOTHER_PROCESS, _FORGE = (textwrap.indent(code, " " * 8) for code in (READ_ANOTHER_PROCESS, _FORGE))


FORGED = {"days": {"1": {"score": {"total": 7, "passed": 7}}}, "exercises": []}

CASES: dict[str, Hostile] = {
    # ---- exceptions and exits
    "raises": Hostile("count_repeats", """
        def count_repeats(tokens):
            raise ValueError("boom")""", ("count_repeats raised ValueError", "boom")),
    "sys_exit": Hostile("count_repeats", """
        import sys
        def count_repeats(tokens):
            sys.exit(3)""", ("tried to end the program (sys.exit(3)",)),
    "raise_system_exit": Hostile("describe_shape", """
        def describe_shape(tokens):
            raise SystemExit""", ("tried to end the program",)),
    "keyboard_interrupt": Hostile("describe_shape", """
        def describe_shape(tokens):
            raise KeyboardInterrupt""", ("raised KeyboardInterrupt",)),
    # ---- hangs
    "busy_loop": Hostile("slow_sum", """
        def slow_sum(tokens):
            while True:
                pass""", (TIME_LIMIT,)),
    "future_wait": Hostile("slow_sum", """
        import torch
        def slow_sum(tokens):
            torch.futures.Future().wait()""", (TIME_LIMIT,)),
    "loop_catching_the_timeout": Hostile("slow_sum", """
        import time
        def slow_sum(tokens):
            while True:
                try:
                    time.sleep(10)
                except BaseException:
                    pass""", (TIME_LIMIT,)),
    "setitimer_zero_and_signals_ignored": Hostile("slow_sum", """
        import signal
        def slow_sum(tokens):
            signal.setitimer(signal.ITIMER_REAL, 0)
            for sig in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
            while True:
                pass""", (TIME_LIMIT,)),
    "hang_after_returning": Hostile("mean_logit", """
        import time
        def mean_logit(model, tokens):
            value = model(tokens).mean().item()
            model.state_dict = lambda *args, **kwargs: time.sleep(10**6)
            return value""", ("mean_logit returned, but the checks that follow", "did not finish within 4 s")),
    "returned_value_whose_ne_hangs": Hostile("count_repeats", """
        class Forever(int):
            def __ne__(self, other):
                while True:
                    pass
            __eq__ = __ne__
        def count_repeats(tokens):
            return Forever(int((tokens[:, 1:] == tokens[:, :-1]).sum()))""", ("Forever (a subclass of int)",)),
    "import_time_hang": Hostile("slow_sum", """
        def _never_returns(function):
            while True:
                pass
        @_never_returns
        def slow_sum(tokens):
            return 0""", ("did not finish within 3 s (the import time limit)",), all_fail=True),
    # ---- deaths
    "os_exit": Hostile("count_repeats", """
        import os
        def count_repeats(tokens):
            os._exit(0)""", ("exited with code 0 before reporting a result", "while count_repeats ran")),
    "segfault": Hostile("describe_shape", """
        import ctypes
        def describe_shape(tokens):
            ctypes.string_at(0)""", ("was killed by SIGSEGV (a segmentation fault",)),
    "killed_by_sigkill": Hostile("distinct_tokens", """
        import os, signal
        def distinct_tokens(tokens):
            os.kill(os.getpid(), signal.SIGKILL)""", ("was killed by SIGKILL",)),
    "out_of_memory_tensor": Hostile("distinct_tokens", """
        import torch
        def distinct_tokens(tokens):
            return torch.ones(2**31).tolist()""", ("can't allocate memory", "the memory limit")),
    "out_of_memory_python": Hostile("distinct_tokens", """
        def distinct_tokens(tokens):
            hoard = []
            while True:
                hoard.append(bytearray(2**26))""", ("MemoryError", "the memory limit")),
    "signals_the_grading_parent": Hostile("slow_sum", """
        import os, signal
        def slow_sum(tokens):
            os.kill(os.getppid(), signal.SIGKILL)  # refused by the worker's seccomp filter
            while True:
                pass""", ("slow_sum raised PermissionError", "Operation not permitted")),
    "import_time_exit": Hostile("slow_sum", """
        import os
        def _gone(function):
            os._exit(0)
        @_gone
        def slow_sum(tokens):
            return 0""", ("exited with code 0", "while importing your module"), all_fail=True),
    # ---- liars
    "int_subclass_always_equal": Hostile("count_repeats", """
        class Liar(int):
            def __ne__(self, other):
                return False
            def __eq__(self, other):
                return True
        def count_repeats(tokens):
            return Liar(-1)""", ("Liar (a subclass of int)", "no subclasses")),
    "tensor_subclass_torch_function": Hostile("head_summary", """
        import torch
        class Agreeable(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                return torch.tensor(True)
        def head_summary(model, tokens):
            fake = torch.zeros(2).as_subclass(Agreeable)
            return {"max": fake, "entropy": fake}""", ("Agreeable (a subclass of torch.Tensor)",)),
    "custom_object_equal_to_anything": Hostile("describe_shape", """
        class Anything:
            def __eq__(self, other):
                return True
            def __str__(self):
                return "batch=3, pos=8"
        def describe_shape(tokens):
            return Anything()""", ("your output is a Anything",)),
    # ---- leaks (the hostile exercise leaves something behind; the exercises after it must not notice)
    "global_module_hook": Hostile("mean_logit", """
        import torch
        def mean_logit(model, tokens):
            value = model(tokens).mean().item()
            torch.nn.modules.module.register_module_forward_hook(
                lambda module, args, output: output * 0 if isinstance(output, torch.Tensor) else output)
            return value""", ("global nn.Module hooks (0 -> 1)",)),
    "attributes_patched_on_the_model": Hostile("mean_logit", """
        import torch
        def mean_logit(model, tokens):
            type(model).forward = lambda self, *args, **kwargs: torch.zeros(1)
            model.blocks[0].attn.forward = lambda *args, **kwargs: None
            return 0.0""", ("output: expected", "got 0.0")),
    "background_thread": Hostile("mean_logit", """
        import threading, time
        import torch
        def mean_logit(model, tokens):
            value = model(tokens).mean().item()
            def vandal():
                while True:
                    torch.set_default_dtype(torch.float16)
                    time.sleep(0.001)
            threading.Thread(target=vandal, daemon=True).start()
            return value""", ("Python thread(s) started and still running",)),
    "default_dtype": Hostile("describe_shape", """
        import torch
        def describe_shape(tokens):
            torch.set_default_dtype(torch.float64)
            return f"batch={tokens.shape[0]}, pos={tokens.shape[1]}\"""", ("torch's default dtype",)),
    "grad_mode": Hostile("count_repeats", """
        import torch
        def count_repeats(tokens):
            torch.set_grad_enabled(False)
            return int((tokens[:, 1:] == tokens[:, :-1]).sum())""", ("grad mode",)),
    "thread_count": Hostile("describe_shape", """
        import torch
        def describe_shape(tokens):
            torch.set_num_threads(3)
            return f"batch={tokens.shape[0]}, pos={tokens.shape[1]}\"""", ("torch's thread count (1 -> 3)",)),
    "global_seed": Hostile("count_repeats", """
        import torch
        def count_repeats(tokens):
            torch.manual_seed(0)
            return int((tokens[:, 1:] == tokens[:, :-1]).sum())""", ("the seed of torch's global RNG",)),
    "config_flags": Hostile("mean_logit", """
        def mean_logit(model, tokens):
            model.set_use_attn_result(True)
            model.cfg.n_heads = 1
            model.cfg.use_hook_tokens = True
            return -1.0""", ("left the config of model 'tiny' changed", "n_heads: 2 -> 1")),
    # ---- tampering with what learners are graded against
    "overwrite_references": Hostile("count_repeats", """
        def count_repeats(tokens):
            open({references!r}, "wb").write(b"forged")
            return 0""", (GUARD, "day1.pt")),
    "delete_references": Hostile("count_repeats", """
        import os
        def count_repeats(tokens):
            os.remove({references!r})""", (GUARD,)),
    "torch_save_over_references": Hostile("head_summary", """
        import torch
        def head_summary(model, tokens):
            torch.save({"count_repeats": {}}, {references!r})  # opened by C++: only the seccomp filter sees it
            return {}""", ("head_summary raised RuntimeError", "day1.pt")),
    "native_write_to_references": Hostile("count_repeats", """
        import ctypes, os
        def count_repeats(tokens):
            libc = ctypes.CDLL(None)
            fd = libc.open({references!r}.encode(), os.O_WRONLY | os.O_TRUNC)
            if fd < 0:
                raise OSError("the references could not be opened for writing")
            libc.write(fd, b"forged", 6)
            libc.close(fd)
            return int((tokens[:, 1:] == tokens[:, :-1]).sum())""", ("could not be opened for writing",)),
    "move_the_zoo_loader_away": Hostile("describe_shape", """
        import os
        def describe_shape(tokens):
            os.replace({zoo!r}, {scratch!r})""", (GUARD, "models.py")),
    "low_level_write_to_zoo": Hostile("distinct_tokens", """
        import os
        def distinct_tokens(tokens):
            fd = os.open({zoo!r}, os.O_WRONLY | os.O_TRUNC)
            os.write(fd, b"x")""", (GUARD,)),
    "append_to_shipped_zoo_weights": Hostile("distinct_tokens", """
        def distinct_tokens(tokens):
            open({weights!r}, "ab").close()""", (GUARD, "model.safetensors")),
    # ---- report forging
    "report_forged_by_atexit_and_a_daemon": Hostile("count_repeats", """
        import atexit, json, os, time
        def count_repeats(tokens):
            def forge():
                with open({report!r}, "w") as handle:
                    json.dump({forged!r}, handle)
            atexit.register(forge)
            if os.fork() == 0:
                os.setsid()
                if os.fork() == 0:
                    time.sleep(3)
                    forge()
                os._exit(0)
            forge()
            return -1""", ("count_repeats raised PermissionError",)),
    # ---- cheating (instructor grading only)
    "imports_the_solutions": Hostile("count_repeats", """
        def count_repeats(tokens):
            from solutions import day1_toy
            return day1_toy.count_repeats(tokens)""", ("imported the course's solutions",), instructor=True),
    "reads_the_references": Hostile("count_repeats", """
        import torch
        def count_repeats(tokens):
            return torch.load({references!r})["count_repeats"]["3 x 8 tokens below 12"]""",
                                    ("opened", "day1.pt", "stored reference outputs"), instructor=True),
    # ---- second round: the supervisor's memory, native reads, the protocol
    "reads_another_processs_memory": Hostile("count_repeats", _READ_ANOTHER_PROCESS + f"""
        def count_repeats(tokens):
            if _read_another_process() is None:
                raise PermissionError("no other process's memory could be read")
            return {_RIGHT}""", ("count_repeats raised PermissionError", "memory could be read")),
    "reads_another_processs_memory_under_grade": Hostile("count_repeats", _READ_ANOTHER_PROCESS + f"""
        def count_repeats(tokens):
            if _read_another_process() is None:
                raise PermissionError("no other process's memory could be read")
            return {_RIGHT}""", ("count_repeats raised PermissionError",), instructor=True),
    "reads_memory_from_a_module_level_assignment": Hostile("count_repeats", _READ_ANOTHER_PROCESS + f"""
        _STOLEN = _read_another_process()
        def count_repeats(tokens):
            if _STOLEN is None:
                raise PermissionError("no other process's memory could be read")
            return {_RIGHT}""", ("count_repeats raised PermissionError",), instructor=True),
    "native_read_of_the_references": Hostile("count_repeats", f"""
        import ctypes, os
        def count_repeats(tokens):
            fd = ctypes.CDLL(None).open({{references!r}}.encode(), os.O_RDONLY)
            if fd < 0:
                raise PermissionError("the references could not be opened")
            return {_RIGHT}""", ("could not be opened",), instructor=True),
    "relative_open_of_the_solutions": Hostile("count_repeats", f"""
        import os
        def count_repeats(tokens):
            folder = os.open({{root!r}}, os.O_RDONLY)
            os.close(os.open("solutions/day1_toy.py", os.O_RDONLY, dir_fd=folder))
            return {_RIGHT}""", ("count_repeats raised PermissionError",), instructor=True),
    "forged_phases_restart_the_time_limit": Hostile("slow_sum", _FORGE + """
        import time
        def slow_sum(tokens):
            end = time.monotonic() + 2.5
            while time.monotonic() < end:
                _channel().send(kind="phase", phase="call", case="seed")
                _channel().send(kind="phase", phase="import")
                time.sleep(0.2)
            return int(tokens.sum())""", (TIME_LIMIT,)),
    "forged_audit_stretches_the_time_limit": Hostile("slow_sum", _FORGE + """
        import time
        def slow_sum(tokens):
            _channel().send(kind="phase", phase="audit", case="seed")  # the call's end, claimed at its start
            time.sleep(2.5)  # past the 1 s limit, within the 4 s the audits get
            return int(tokens.sum())""", ("slow_sum's end was announced before it returned",)),
    # graded side by side (`pytest --day` plans 2 at a time), the burner starves the exercises beside it: slow_sum
    # (0.1 s of CPU alone, 1 s allowed) times out beside it, is graded again alone and passes
    "cpu_burner_starves_its_neighbour": Hostile("count_repeats", """
        import os, time
        def count_repeats(tokens):
            end = time.monotonic() + 5
            if os.fork() == 0:  # 32 processes burn CPU for 5 s, forked by a helper so that this one is not starved
                for _ in range(31):
                    if os.fork() == 0:
                        break
                while time.monotonic() < end:
                    pass
                os._exit(0)
            time.sleep(6)
            return -1
        def slow_sum(tokens):
            end = time.process_time() + 0.1
            while time.process_time() < end:
                pass
            return int(tokens.sum())""", ("expected",)),
    "forged_status_course_error": Hostile("count_repeats", _FORGE + """
        def count_repeats(tokens):
            _channel().send(kind="rejection", case="", status="error", message="forged: a course bug", hint="")
            os._exit(0)""", ("forged: a course bug",)),
    "forged_status_not_started": Hostile("count_repeats", _FORGE + """
        def count_repeats(tokens):
            _channel().send(kind="rejection", case="", status="not started", message="forged: not started", hint="")
            os._exit(0)""", ("forged: not started",)),
    "forged_result_with_an_unhashable_case": Hostile("count_repeats", _FORGE + """
        def count_repeats(tokens):
            _channel().send(kind="result", case=["x"], output=0, complaint=None, complaint_status="failed",
                            raised=None, raised_message=None)
            return -1""", ("expected",)),
    "escape_sequences_in_a_message": Hostile("describe_shape", """
        def describe_shape(tokens):
            raise ValueError("\\r\\x1b[2K\\x1b[32mPASSED\\x1b[0m")""", ("describe_shape raised ValueError", "PASSED"),
                                                absent=("\r", "\x1b")),
    "a_100_MB_exception_message": Hostile("distinct_tokens", """
        def distinct_tokens(tokens):
            raise ValueError("x" * 100_000_000)""", ("distinct_tokens raised ValueError", "cut")),
    "fchmod_of_the_references": Hostile("count_repeats", f"""
        import os
        def count_repeats(tokens):
            fd = os.open({{references!r}}, os.O_RDONLY)
            os.fchmod(fd, 0)
            return {_RIGHT}""", ("count_repeats raised PermissionError",)),
    "capabilities_of_a_worker_started_as_root": Hostile("count_repeats", f"""
        def count_repeats(tokens):
            status = open("/proc/self/status").read()
            if int(status.split("CapEff:")[1].split()[0], 16) == 0:
                raise PermissionError("this process holds no capability")
            return {_RIGHT}""", ("count_repeats raised PermissionError", "no capability")),
    "memfd_beyond_the_memory_limit": Hostile("distinct_tokens", """
        import os
        def distinct_tokens(tokens):
            fd = os.memfd_create("hoard")
            block = b"x" * 2**20
            for _ in range(1200):  # 1.2 GiB, beyond the 1 GiB limit, which RLIMIT_AS does not count
                os.write(fd, block)
            return sorted(set(tokens.flatten().tolist()))""", ("distinct_tokens raised PermissionError",)),
}


def _course_files(course) -> dict[str, str]:
    """Hash of every file of the course and of this repository's references and zoo."""
    roots = [course.root, REPO_ROOT / "checks" / "references", REPO_ROOT / "curriculum" / "models"]
    return {str(path): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode) for root in roots
            for path in sorted(root.rglob("*")) if path.is_file() and "__pycache__" not in path.parts}


def _learner(tmp: Path, course, case: Hostile, report: Path) -> Path:
    code = textwrap.dedent(case.code)
    values = {"references": str(course.days[1].reference_paths[0]), "zoo": str(course.root / "models.py"),
              "scratch": str(tmp / "scratch.py"), "report": str(report), "forged": FORGED,
              "root": str(course.root), "weights": str(REPO_ROOT / "curriculum" / "models" / "induction-2l" / "model.safetensors")}
    for key, value in values.items():
        code = code.replace(f"{{{key}!r}}", repr(value))
    path = tmp / "hostile_day1.py"
    path.write_text(course.days[1].solution_path.read_text() + "\n\n" + code + "\n")
    return path


def _grade_with_pytest(pytester, course, learner: Path, report: Path) -> tuple[dict, dict[str, str], int]:
    pytester.makeini(f"[pytest]\ncourse_root = {course.root}\ncourse_models = {course.model_loader}\n"
                     f"course_limits = {LIMITS}\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--day", "1", "--learner", str(learner),
                                          "--grade-json", str(report))
    graded = json.loads(report.read_text())
    statuses = {entry["exercise"]: entry["status"] for entry in graded["exercises"]}
    # the report is the supervisor's: it agrees with pytest's own outcomes and with the table it printed
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == list(statuses.values()).count("passed")
    assert outcomes.get("failed", 0) == list(statuses.values()).count("failed")
    passed = list(statuses.values()).count("passed")
    result.stdout.fnmatch_lines([f"day 1: {passed}/7 passed*"])
    return graded, statuses, result.ret


def _grade_as_instructor(tmp: Path, course, learner: Path) -> tuple[dict, dict[str, str], int]:
    out = tmp / "grades"
    code = checks_main(["grade", "--day", "1", "--root", str(course.root), "--models", course.model_loader,
                        "--out", str(out), "--device", "cpu", "--jobs", "1", str(learner)])
    graded = json.loads((out / "hostile_day1.json").read_text())
    statuses = {entry["exercise"]: entry["status"] for entry in graded["exercises"]}
    (row,) = list(csv.DictReader(open(out / "summary.csv")))
    assert int(row["passed"]) == list(statuses.values()).count("passed")
    assert int(row["failed"]) == list(statuses.values()).count("failed")
    assert int(row["total"]) == len(EXERCISES)
    return graded, statuses, code


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_exercise_fails_alone_and_says_why(name, pytester, built_course):
    case = CASES[name]
    report = pytester.path / "grades.json"
    learner = _learner(pytester.path, built_course, case, report)
    before = _course_files(built_course)
    if case.instructor:
        graded, statuses, code = _grade_as_instructor(pytester.path, built_course, learner)
        assert code == 1  # graded, and an exercise failed (its report says which and why)
    else:
        graded, statuses, code = _grade_with_pytest(pytester, built_course, learner, report)
        assert code == pytest.ExitCode.TESTS_FAILED
    assert _course_files(built_course) == before, "a course file changed"
    assert graded["isolated"] is True
    held = graded["sandbox"]  # which isolation features held on this machine, as `--grade-json` reports them
    assert {"non_dumpable", "pid_namespace", "capabilities_dropped", "seccomp", "landlock_abi"} <= set(held)
    assert list(statuses) == list(EXERCISES)  # the total counts every exercise, in order
    assert graded["days"]["1"]["score"]["total"] == len(EXERCISES)
    failing = list(EXERCISES) if case.all_fail else [case.target]
    assert statuses == {name: "failed" if name in failing else "passed" for name in EXERCISES}
    messages = {entry["exercise"]: entry["message"] for entry in graded["exercises"]}
    for fragment in case.expect:
        assert fragment in messages[failing[0]], (failing[0], messages[failing[0]])
    for fragment in case.absent:
        assert fragment not in messages[failing[0]], (failing[0], messages[failing[0]])
    assert all(len(message) < 50_000 for message in messages.values())
    for exercise in failing[1:]:  # an import that fails is explained once, at the day's first exercise
        assert messages[exercise] == f"not graded: day 1's file cannot be graded (the reason is given at {failing[0]})"


def test_a_worker_holds_none_of_pytests_files(tmp_path, built_course):
    """pytest keeps the terminal's stdout and its capture files open under other numbers: a worker that inherited
    them could print a forged "PASSED" line on the terminal."""
    import os
    import subprocess
    import sys

    learner = tmp_path / "hostile_day1.py"
    learner.write_text(built_course.days[1].solution_path.read_text() + textwrap.dedent("""

        import os
        def describe_shape(tokens):
            for fd in range(3, 1024):
                try:
                    os.write(fd, b"\\nFORGED day1::slow_sum PASSED\\n")
                except OSError:
                    pass
            return f"batch={tokens.shape[0]}, pos={tokens.shape[1]}"
        """))
    (tmp_path / "pytest.ini").write_text(f"[pytest]\ncourse_root = {built_course.root}\n"
                                         f"course_models = {built_course.model_loader}\ncourse_limits = {LIMITS}\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}  # this checkout's grader, whatever is installed
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--day", "1", "--learner",
                          str(learner)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert "day 1:" in run.stdout, run.stdout[-2000:] + run.stderr[-2000:]
    assert "FORGED" not in run.stdout + run.stderr
