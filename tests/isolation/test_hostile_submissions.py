"""Hostile learners: each case is the fixture course's day-1 solution with one exercise made hostile (raising,
exiting, hanging, dying, lying about its type, leaking state, tampering with the course, forging the report,
cheating). Each case asserts: the hostile exercise fails with a message that says what happened (and holds none of
its `absent` fragments); every other exercise passes, but for those its run's other cases attack; the total counts
every exercise; the exit code; no course file changed; the report is the supervisor's (it agrees with pytest's own
outcomes and the table, or with the batch's summary).

Cases share runs of the grader (`_plan_runs`; a run of `pytest --day 1` costs about as much as its seven exercises):
up to PER_RUN cases, each attacking a different exercise, are written into one learner file and graded by one
`pytest --day 1`, so at least four exercises of every run are honest. What a run's cases share is what one learner's
exercises share anyway: the supervisor, the warm parent (zygote) each exercise's worker is forked from, the course's
files, the report and the table. Sharing them is sound because containing each exercise within them is what these
tests prove: every case's test asserts its whole run (each attacked exercise failed, every other one passed, nothing
changed, the report agrees), so a hostile exercise that reaches past its own worker (breaks a neighbour, the zygote,
the files, the report) fails every test of its run, and one that changes how a neighbouring hostile exercise fails
fails that neighbour's test (its message fragments). Not shared: a hostility at import (`all_fail`: no exercise of
its file could be graded, so it would hide the others) and `alone` cases (the CPU burner starves the exercises
beside it on purpose) get a run each; the instructor's cases all attack count_repeats and are graded as one
`python -m checks grade` batch, a submission each (graded by a supervisor of its own, forked from the warm parent
the batch keeps, as an instructor's batch is; the exit code asserted is the batch's). Each run is graded once per
session, by the first test that needs it, and its result is kept in a file under a lock in the session's temporary
folder, where the workers of `pytest -n` find it too.
"""

from __future__ import annotations

import ast
import csv
import fcntl
import hashlib
import json
import os
import re
import textwrap
from collections import Counter
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
    alone: bool = False  # graded in a run of its own (see `_plan_runs`)


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
            return int(tokens.sum())""", ("expected",), alone=True),
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


def _hostile_code(name: str, tmp: Path, course, report: Path) -> str:
    """Case `name`'s code, its placeholders filled in (the paths it attacks)."""
    code = textwrap.dedent(CASES[name].code)
    values = {"references": str(course.days[1].reference_paths[0]), "zoo": str(course.root / "models.py"),
              "scratch": str(tmp / "scratch.py"), "report": str(report), "forged": FORGED, "root": str(course.root),
              "weights": str(REPO_ROOT / "curriculum" / "models" / "induction-2l" / "model.safetensors")}
    for key, value in values.items():
        code = code.replace(f"{{{key}!r}}", repr(value))
    return code


def _bindings(name: str) -> dict[str, str]:
    """The top-level names a case's code binds (functions, classes, variables; not imports), with their source."""
    tree = ast.parse(re.sub(r"\{\w+!r\}", "None", textwrap.dedent(CASES[name].code)))  # placeholders: any value
    bound = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound[node.name] = ast.unparse(node)
        elif isinstance(node, ast.Assign):
            bound.update({target.id: ast.unparse(node) for target in node.targets if isinstance(target, ast.Name)})
    return bound


@dataclass(frozen=True)
class Run:
    """One grading run that several cases share: `pytest --day 1` of one learner file holding each case's hostile
    code, or (`instructor`) one `python -m checks grade` batch of one submission per case."""

    name: str
    cases: tuple[str, ...]
    instructor: bool = False

    @property
    def failing(self) -> tuple[str, ...]:
        """The exercises that must fail: the cases' targets (every exercise where the file cannot be imported)."""
        if any(CASES[name].all_fail for name in self.cases):
            return EXERCISES
        return tuple(exercise for exercise in EXERCISES if exercise in {CASES[name].target for name in self.cases})


def _shareable(names: list[str], name: str) -> bool:
    """Whether case `name` may join a pytest run of `names`: no exercise attacked twice, at most PER_RUN cases (so
    that at least 4 of the 7 exercises stay honest), and no helper name bound differently by two cases."""
    if len(names) >= PER_RUN:
        return False
    bound = _bindings(name)
    for other in names:
        theirs = _bindings(other)
        if any(key in theirs and theirs[key] != source for key, source in bound.items()):
            return False
        if {key for key in (*bound, CASES[name].target) if key in EXERCISES} & \
                {key for key in (*theirs, CASES[other].target) if key in EXERCISES}:
            return False
    return True


def _plan_runs() -> list[Run]:
    """Every case's run: the `alone` and import-time (`all_fail`) cases one run each, the instructor's cases one
    batch, the rest packed into as few pytest runs as their targets allow (count_repeats is attacked most), the
    cases of the most attacked exercise placed first, each in the run of fewest cases that can take it."""
    alone = [name for name, case in CASES.items() if case.all_fail or case.alone]
    instructor = [name for name, case in CASES.items() if case.instructor and name not in alone]
    packed = [name for name in CASES if name not in alone and name not in instructor]
    attacked = Counter(CASES[name].target for name in packed)
    groups: list[list[str]] = [[] for _ in range(max(attacked.values()))]
    for name in sorted(packed, key=lambda name: -attacked[CASES[name].target]):  # stable: CASES's order within
        room = [group for group in groups if _shareable(group, name)]
        if not room:
            groups.append([])
            room = [groups[-1]]
        min(room, key=len).append(name)
    runs = [Run(f"run{index}", tuple(group)) for index, group in enumerate(groups)]
    runs += [Run(name, (name,), instructor=CASES[name].instructor) for name in alone]
    return runs + [Run("instructor", tuple(instructor), instructor=True)]


PER_RUN = 3
RUNS = _plan_runs()
RUN_OF = {name: run for run in RUNS for name in run.cases}


def _grade_with_pytest(run: Run, pytester, course) -> dict:
    report = pytester.path / "grades.json"
    learner = pytester.path / "hostile_day1.py"
    learner.write_text(course.days[1].solution_path.read_text() + "".join(
        f"\n\n{_hostile_code(name, pytester.path, course, report)}\n" for name in run.cases))
    pytester.makeini(f"[pytest]\ncourse_root = {course.root}\ncourse_models = {course.model_loader}\n"
                     f"course_limits = {LIMITS}\n")
    before = _course_files(course)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--day", "1", "--learner", str(learner),
                                          "--grade-json", str(report))
    after = _course_files(course)
    return {"report": json.loads(report.read_text()), "code": int(result.ret),
            "outcomes": result.parseoutcomes(), "stdout": result.stdout.lines,
            "changed": sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))}


def _grade_as_instructor(run: Run, tmp: Path, course) -> dict:
    out = tmp / "grades"
    learners = []
    for name in run.cases:
        learner = tmp / f"{name}_day1.py"
        learner.write_text(course.days[1].solution_path.read_text() + "\n\n" +
                           _hostile_code(name, tmp, course, out / f"{name}_day1.json") + "\n")
        learners.append(learner)
    before = _course_files(course)
    code = checks_main(["grade", "--day", "1", "--root", str(course.root), "--models", course.model_loader,
                        "--out", str(out), "--device", "cpu", "--jobs", "1", *map(str, learners)])
    after = _course_files(course)
    rows = {row["submission"]: row for row in csv.DictReader(open(out / "summary.csv"))}
    return {"reports": {name: json.loads((out / f"{name}_day1.json").read_text()) for name in run.cases},
            "rows": {name: rows[f"{name}_day1"] for name in run.cases}, "code": code,
            "changed": sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))}


@pytest.fixture(scope="session")
def graded_runs(tmp_path_factory) -> Path:
    """Where each run's result is kept once graded: shared by the workers of `pytest -n` (their temporary folders'
    parent is the session's), the session's own temporary folder otherwise."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "hostile-runs"
    folder.mkdir(exist_ok=True)
    return folder


def _graded(run: Run, folder: Path, grade) -> dict:
    """The result of `run`, graded by the first test (of any worker) that needs it, under a lock."""
    result = folder / f"{run.name}.json"
    with open(folder / f"{run.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result.exists():
            part = result.with_suffix(".part")
            part.write_text(json.dumps(grade()))
            part.replace(result)
    return json.loads(result.read_text())


def test_every_case_is_graded_in_one_run_and_every_run_keeps_four_exercises_honest():
    assert sorted(RUN_OF) == sorted(CASES) and sum(len(run.cases) for run in RUNS) == len(CASES)
    for run in RUNS:
        if not run.instructor and len(run.cases) > 1:
            assert len(run.failing) == len(run.cases) <= PER_RUN and len(EXERCISES) - len(run.failing) >= 4
            assert not any(CASES[name].all_fail or CASES[name].alone for name in run.cases)


# in run order, so that `pytest -n` (which hands each worker consecutive tests) mostly grades a run where it reads it
@pytest.mark.parametrize("name", [name for run in RUNS for name in run.cases])
def test_a_hostile_exercise_fails_alone_and_says_why(name, pytester, built_course, graded_runs):
    case, run = CASES[name], RUN_OF[name]
    if run.instructor:
        result = _graded(run, graded_runs, lambda: _grade_as_instructor(run, pytester.path, built_course))
    else:
        result = _graded(run, graded_runs, lambda: _grade_with_pytest(run, pytester, built_course))
    graded = result["reports"][name] if run.instructor else result["report"]
    statuses = {entry["exercise"]: entry["status"] for entry in graded["exercises"]}
    if run.instructor:
        row = result["rows"][name]
        assert int(row["passed"]) == list(statuses.values()).count("passed")
        assert int(row["failed"]) == list(statuses.values()).count("failed")
        assert int(row["total"]) == len(EXERCISES)
        assert result["code"] == 1  # graded, and an exercise failed (its report says which and why)
    else:
        # the report is the supervisor's: it agrees with pytest's own outcomes and with the table it printed
        outcomes = result["outcomes"]
        assert outcomes.get("passed", 0) == list(statuses.values()).count("passed")
        assert outcomes.get("failed", 0) == list(statuses.values()).count("failed")
        passed = list(statuses.values()).count("passed")
        pytest.LineMatcher(result["stdout"]).fnmatch_lines([f"day 1: {passed}/7 passed*"])
        assert result["code"] == pytest.ExitCode.TESTS_FAILED
    assert result["changed"] == [], "a course file changed"
    assert graded["isolated"] is True
    held = graded["sandbox"]  # which isolation features held on this machine, as `--grade-json` reports them
    assert {"non_dumpable", "pid_namespace", "capabilities_dropped", "seccomp", "landlock_abi"} <= set(held)
    assert list(statuses) == list(EXERCISES)  # the total counts every exercise, in order
    assert graded["days"]["1"]["score"]["total"] == len(EXERCISES)
    failing = list(EXERCISES) if case.all_fail else [case.target]
    hostile = failing if run.instructor else run.failing  # those of the run's other cases fail in their own tests
    assert statuses == {name: "failed" if name in hostile else "passed" for name in EXERCISES}
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
