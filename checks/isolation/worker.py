"""The grading worker: the only process that runs learner code.

`python -m checks.isolation.worker` is started by a supervisor (`checks.isolation.supervisor`) with one end of a
socket pair. It is a warm parent (a "zygote"): it imports torch and transformer_lens, limits torch to one thread, loads the course's
specs, on CPU builds every input case of the graded days (loading the zoo models), and imports what the days' files
import (plotting, jaxtyping), all before any learner code exists in it; it then freezes the garbage collector's view
of what it holds (children neither scan it nor copy its pages by touching it). Then, per exercise the supervisor
asks for (several may run at a time), it forks one child, which:

1. leaves the parent's process group (the supervisor kills the whole group on a limit) and closes the parent's
   sockets (its own channel and the other children's);
2. caps its address space (RLIMIT_AS), sets torch's threads, and installs an audit hook (`checks.isolation.guard`) that
   no code can remove: no writes to the course's files, and in instructor grading no reads of the solutions or
   stored references;
3. sends the fingerprints of its inputs (computed before any learner code ran) and which sandbox features held,
   imports the learner's module, calls the exercise on every case, sends back each output as plain data
   (`checks.isolation.protocol.to_plain`) the moment the call returns (which ends the call's time limit), then
   audits models and inputs and runs the check's validator, each step announced so the supervisor can apply the
   right time limit;
4. ends with `os._exit`: no atexit hook, no finaliser of the learner's runs in it.

Every exercise runs in a fresh fork of the untouched parent, so nothing one exercise does (hooks, patched
attributes, threads, torch's global state, config flags) reaches another. Torch's OpenMP pool does not survive
fork: a child that uses several threads hangs when its parent already ran a multi-threaded region (measured with
torch 2.13), so the parent stays at one thread and only children raise it. CUDA does not survive fork either, so on
CUDA each child builds its own inputs. The parent is a child subreaper: after each exercise it kills every process
the child left behind, even one that started its own session (`checks.isolation.reaper`).

Frames on the result pipe: see `checks.isolation.protocol` (plain data, bounded, read without running any code).
Where the kernel allows (`checks.isolation.sandbox`), the zygote runs in its own user and network namespaces; each
child makes a PID namespace and forks the process that runs the learner's code into it (with its own /proc), so that
every process the exercise started dies with it; and that process is confined by Landlock as well as by the seccomp
filter (`checks.isolation.seccomp`). What
children print reaches the log through the zygote, capped; the zygote holds none of the supervisor's descriptors.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

from checks.isolation import sandbox
from checks.isolation.guard import CourseFileGuard
from checks.isolation.protocol import MAX_MESSAGE, Channel, FrameError, NotPlain, to_plain
from checks.isolation.reaper import kill_leftovers
from checks.isolation.seccomp import forbid_file_changes_and_signals
from curriculum.tools.paths import COURSE_ROOT


# ---- the zygote ------------------------------------------------------------------------------------------------------
def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
_HELD: dict[str, bool | int] = {}  # in a child: which of `checks.isolation.sandbox`'s features held for it (see `Child._run`)


class Zygote:
    """The warm parent: holds the course, pristine models and prebuilt inputs; forks one child per exercise."""

    def __init__(self, config: dict[str, Any], control: socket.socket) -> None:
        import torch

        torch.set_num_threads(1)  # see the module docstring: the parent's OpenMP pool must stay single-threaded
        from checks.course import Course
        from checks.pipeline.env import Env

        self.config = config
        self.control = control
        self.sandbox: list[str] = config.get("sandbox", [])
        self.log_bytes = self.log_left = int(config.get("log_bytes", 16 << 20))
        self.log_cut = False
        self.course = Course(Path(config["root"]), config["loader"])
        self.days = {number: self.course.day(number) for number in config["days"]}
        self.env = Env(config["device"], self.course.load_model_function())
        self.prebuilt: dict[tuple[str, str], tuple[Any, Any] | str] = {}
        if config["prebuild"]:
            for day in self.days.values():
                for check in day.checks:
                    for case in check.cases:
                        self.prebuilt[check.name, case] = build_case(self.env, check, case)
        import checks.pipeline.grading  # noqa: F401  (used by every child)
        import checks.pipeline.learner  # noqa: F401

        for day in self.days.values():
            import_day_dependencies(day)
        self._needed = _needed_folders()
        self._confinements: dict[str, tuple[list[Path], list[Path], list[Path]]] = {}

    def confinement(self, learner: Path) -> tuple[list[Path], list[Path], list[Path]]:
        """For an exercise of `learner`: (the folders no write may touch, the ones no read may touch in instructor
        grading, the folders Landlock hides), worked out once per learner's file in the zygote, as are Landlock's
        rules for them (`sandbox.prepare_rules`): a child only applies them."""
        key = str(learner)
        if key not in self._confinements:
            config = self.config
            roots = [self.course.root] + [Path(p) for p in config.get("protect", [])]
            forbidden = [path for root in roots for path in (root / "solutions", root / "checks" / "references")]
            unreadable = forbidden + [root / "notebooks" / "instructor" for root in roots] + _private_folders(
                [learner.parent] + [Path(p) for p in config.get("protect", [])[1:]], self._needed)
            self._confinements = {key: (roots, forbidden, unreadable)}  # one learner's file at a time
            sandbox.prepare_rules(unreadable if config["forbid_reads"] else [], [learner])
        return self._confinements[key]

    def serve(self) -> None:
        """Answer the supervisor's requests and report each child's end, several children at a time: each request
        comes with its own channel (a socket), on which its child's start and exit are said. What the children
        print comes through a pipe each and goes to the log, at most `log_bytes` in all (then it is dropped)."""
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.control.send(json.dumps({"kind": "ready", "pid": os.getpid(), "sandbox": self.sandbox}).encode())
        running: dict[int, _Running] = {}
        while True:
            pidfds = [item.pidfd for item in running.values() if item.pidfd is not None]
            outputs = [item.output for item in running.values() if item.output is not None]
            polling = len(pidfds) < len(running)  # no pidfd here (not Linux): look every 20 ms
            readable, _, _ = select.select([self.control, *pidfds, *outputs], [], [], 0.02 if polling else None)
            for item in running.values():
                if item.output in readable:
                    self._relay(item)
            for pid, item in list(running.items()):
                if item.pidfd in readable:
                    os.close(item.pidfd)
                    _, status = os.waitpid(pid, 0)
                elif item.pidfd is None:
                    ended, status = os.waitpid(pid, os.WNOHANG)
                    if not ended:
                        continue
                else:
                    continue
                del running[pid]
                kill_leftovers(pid, spare=set(running))
                while item.output is not None:  # what it printed last; its leftovers are dead, so this ends
                    self._relay(item)
                try:
                    item.channel.send(json.dumps({"kind": "exited", "pid": pid, "status": status}).encode())
                except OSError:
                    pass  # the supervisor gave up on this run
                item.channel.close()
            if self.control in readable:
                try:
                    data, fds, _, _ = socket.recv_fds(self.control, 1 << 16, 1)
                except OSError:
                    return
                if not data:
                    return
                request = json.loads(data)
                if not fds:
                    return
                if request["kind"] == "log":  # the next submission's log (sent between submissions)
                    self._use_log(fds[0])
                    continue
                channel = socket.socket(fileno=fds[0])
                inherited = [self.control.fileno(), channel.fileno()]
                for other in running.values():
                    inherited += [other.channel.fileno()] + [fd for fd in (other.pidfd, other.output) if fd is not None]
                item = self._start(request, channel, inherited)
                running[item.pid] = item

    def _use_log(self, fd: int) -> None:
        """Print into `fd` from now on (what children print goes there), with a fresh `log_bytes` cap."""
        sys.stdout.flush()
        sys.stderr.flush()
        for target in (1, 2):
            os.dup2(fd, target)
        os.close(fd)
        self.log_left, self.log_cut = self.log_bytes, False

    def _relay(self, item: "_Running") -> None:
        try:
            chunk = os.read(item.output, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            os.close(item.output)
            item.output = None
            return
        kept = chunk[:max(0, self.log_left)]
        self.log_left -= len(chunk)
        if kept:
            _write_all(1, kept)
        if self.log_left < 0 and not self.log_cut:
            self.log_cut = True
            _write_all(1, f"\n[grading: output cut at {self.log_bytes} bytes]\n".encode())

    def _start(self, request: dict[str, Any], channel: socket.socket, inherited: list[int]) -> "_Running":
        """Fork the child of one request; `inherited` are this process's descriptors the child must not keep (no
        child may speak for the zygote, or for another child, on the supervisor's channels)."""
        if str(request.get("learner", "")).endswith(".ipynb"):
            _import_jupytext()  # once, here: a notebook is converted in every child (2-3 s of imports)
        if request.get("learner"):
            self.confinement(Path(request["learner"]))
        read_end, write_end = os.pipe()
        output_read, output_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.setpgid(0, 0)
                for fd in inherited + [read_end, output_read]:
                    os.close(fd)
                _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
                os.dup2(output_write, 1)
                os.dup2(output_write, 2)
                os.close(output_write)
                _HELD["pid_namespace"] = sandbox.start_pid_namespace([write_end]) is not None
                if _HELD["pid_namespace"]:
                    _run_in_namespace(lambda: Child(self, request, Channel(write_end)).run(), write_end)
                Child(self, request, Channel(write_end)).run()
            finally:
                os._exit(0)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child did it first, or is already gone
        os.close(write_end)
        os.close(output_write)
        try:
            socket.send_fds(channel, [json.dumps({"kind": "started", "pid": pid}).encode()], [read_end])
        except OSError:
            pass  # the supervisor gave up on this run: the child ends with nobody reading it
        os.close(read_end)
        pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
        return _Running(pid, channel, pidfd, output_read)


class _Running:
    """The zygote's record of a running child: its channel to the supervisor, its pidfd and its output pipe."""

    def __init__(self, pid: int, channel: socket.socket, pidfd: int | None, output: int | None):
        self.pid, self.channel, self.pidfd, self.output = pid, channel, pidfd, output


def _run_in_namespace(run: Callable[[], None], channel: int) -> None:
    """In a child that has just made a PID namespace: fork the process that calls `run` into it (process 2: a
    process that makes a PID namespace can start no thread, and process 1 ignores its own signals), wait for it and
    end the same way (exit code or signal), so the zygote and the supervisor see the learner's process end."""
    pid = os.fork()
    if pid == 0:
        try:
            _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
            _HELD["own_proc"] = sandbox.mount_own_proc()
            run()
        finally:
            os._exit(0)
    os.close(channel)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            if number not in (signal.SIGKILL, signal.SIGSTOP):
                signal.signal(number, signal.SIG_DFL)
            os.kill(os.getpid(), number)
        except (OSError, ValueError):
            pass
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except OSError:
            return


def _import_jupytext() -> None:
    try:
        import jupytext  # noqa: F401
    except ImportError:
        pass  # the child says that notebooks need jupytext


def import_day_dependencies(day: Any) -> None:
    """Import the modules the day's file imports at top level (libraries and course helpers such as plotting, never
    the solutions or the checks), so that each child finds them imported rather than importing them again."""
    import ast
    import importlib.util

    source = day.solution_path if day.solution_path.is_file() else day.curriculum_path
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return
    names = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    for node in tree.body:  # `from curriculum.library import plotting` names a module too
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*"]
    for name in dict.fromkeys(names):
        if name.partition(".")[0] in ("solutions", "checks", "__future__"):
            continue
        if importlib.util.find_spec(name.rpartition(".")[0] or name) is None:
            continue
        try:
            importlib.import_module(name)
        except Exception:
            pass  # not a module (`from torch import Tensor`), or it fails in the child too, where it is reported


def build_case(env: Any, check: Any, case: str) -> tuple[Any, Any] | str:
    """(inputs, fingerprint) of one input case, or the traceback of a builder that crashed (a course bug)."""
    from checks.pipeline.inputs import CourseBug, build_inputs

    try:
        built = build_inputs(env, check, case)
    except CourseBug as bug:
        return bug.details
    return built.inputs, built.fingerprint


# ---- the child -------------------------------------------------------------------------------------------------------
class Child:
    """One exercise in a fresh fork: see steps 1-4 of the module docstring."""

    def __init__(self, zygote: Zygote, request: dict[str, Any], channel: Channel) -> None:
        self.zygote = zygote
        self.request = request
        self.channel = channel

    def run(self) -> None:
        try:
            self._run()
        except BaseException:  # anything not attributed to the learner's call: say it rather than vanish
            try:
                self.channel.send(kind="crash", message=traceback.format_exc()[-4000:])
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
        limit = _address_space() + int(config["memory_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        torch.set_num_threads(max(1, int(config["threads"])))

        built = {case: zygote.prebuilt.get((check.name, case)) or build_case(zygote.env, check, case)
                 for case in check.cases}
        self.channel.send(kind="fingerprints", cases={
            case: ({"hash": item[1].hash, "floats": item[1].floats, **_facts(check, item[0], case_facts)}
                   if isinstance(item, tuple) else {"error": item})
            for case, item in built.items()})
        if any(isinstance(item, str) for item in built.values()):
            return

        learner = Path(self.request["learner"])
        roots, forbidden, unreadable = zygote.confinement(learner)
        CourseFileGuard(roots, forbidden if config["forbid_reads"] else [], self.channel).install()
        _HELD["capabilities_dropped"] = sandbox.drop_capabilities()
        _HELD["seccomp"] = forbid_file_changes_and_signals()
        _HELD["landlock"] = sandbox.restrict_files(unreadable if config["forbid_reads"] else [], [learner])
        _HELD["landlock_abi"] = sandbox.landlock_abi()

        self.channel.send(kind="phase", phase="import", sandbox=_HELD)  # what held: said before any learner code
        try:
            module = load_module(Path(self.request["learner"]))
            wrong_day = wrong_day_error(module, day, zygote.course)
            if wrong_day is not None:
                raise wrong_day
        except LearnerModuleError as error:
            self.channel.send(kind="rejection", case="", status="failed", message=_short(error), hint="",
                              import_error=True)
            return
        except BaseException as error:
            self.channel.send(kind="rejection", case="", status="failed", hint="", import_error=True,
                              message=f"importing {self.request['learner']} raised {type(error).__name__}: "
                              f"{_short(error)}")
            return
        function = module.__dict__.get(check.name)
        if not callable(function):
            self.channel.send(kind="rejection", case="", status="failed", hint="",
                              message=missing_function_message(module, check.name))
            return
        for case, (inputs, _) in built.items():
            self.channel.send(kind="phase", phase="call", case=case)
            returned: list[Any] = []
            committed: dict[str, Any] = {}

            def graded(_call: Callable[..., Any] = graded_callable(function, check, case), **arguments: Any) -> Any:
                returned.append(_call(**arguments))
                return returned[-1]

            def commit(case: str = case) -> None:
                """The call is over: its output goes to the supervisor now, before the audits, and ends the call's
                phase (what the learner's code does after this cannot change the output graded)."""
                if not returned:  # it raised: the rejection follows the audits
                    self.channel.send(kind="phase", phase="audit", case=case)
                    return
                actual = returned[-1]
                raised = actual if isinstance(actual, Raised) else None  # a documented exception, for the judge
                try:
                    committed["output"] = None if raised else to_plain(actual)
                    self.channel.send(kind="output", case=case, output=committed["output"],
                                      raised=list(raised.names) if raised else None,
                                      raised_message=raised.message[:500] if raised else None)
                except (NotPlain, FrameError) as error:
                    committed["error"] = error
                    self.channel.send(kind="phase", phase="audit", case=case)

            try:
                passes = ForwardPasses(check.forward_passes)
                actual = call_learner(graded, check, inputs, zygote.env, alarm=False, after_call=commit, passes=passes)
                raised = actual if isinstance(actual, Raised) else None
                if isinstance(committed.get("error"), NotPlain):
                    raise committed["error"]
                if isinstance(committed.get("error"), FrameError):
                    self.channel.send(kind="rejection", case=case, status="failed", hint=check.hint,
                                      message=f"your output is too large to grade: {committed['error']}")
                    return
                output = committed.get("output")
            except Rejection as rejection:
                message = _short(rejection.message)
                if "MemoryError" in message or "can't allocate memory" in message:
                    message += (f"\n(each grading worker may allocate at most {int(config['memory_bytes']) / 2**30:g}"
                                " GiB: the memory limit)")
                if rejection.status.value == "failed":
                    message = explain_name_error(module, message)
                self.channel.send(kind="rejection", case=case, status=rejection.status.value,
                                  message=_short(message), hint=rejection.hint)
                return
            except NotPlain as error:
                self.channel.send(kind="rejection", case=case, status="failed", message=str(error), hint=check.hint)
                return
            complaint, status = passes.complaint(check.name), "failed"  # said once the output is judged right
            if raised is None and complaint is None:
                complaint, judged = validation_complaint(check, output, inputs)
                status = judged.value
            self.channel.send(kind="result", case=case, complaint=_short(complaint) if complaint else None,
                              complaint_status=status)
        self.channel.send(kind="done")


def _facts(check: Any, inputs: dict[str, Any], case_facts: Any) -> dict[str, Any]:
    """{"facts": ...} for a check with a random-draw contract (plain data about the inputs, computed before any
    learner code runs, for the supervisor's judge), else {}."""
    return {} if check.contract is None else {"facts": to_plain(case_facts(check, inputs), "the contract's facts")}


def _short(text: Any) -> str:
    """`text` cut to what the supervisor shows (a 100 MB exception message never leaves the worker)."""
    try:
        text = text if isinstance(text, str) else str(text)
    except BaseException:
        return "(a message that could not be turned into text)"
    return text if len(text) <= 2 * MAX_MESSAGE else text[:2 * MAX_MESSAGE] + "\n... (cut)"


def _needed_folders() -> list[Path]:
    """What grading reads: the interpreter, its libraries, the course, every top-level module imported so far."""
    needed = [Path(p).resolve() for p in (sys.prefix, sys.base_prefix, COURSE_ROOT)]
    needed += [Path(module.__file__).resolve() for name, module in list(sys.modules.items())
               if "." not in name and isinstance(getattr(module, "__file__", None), str)
               and os.path.isabs(module.__file__)]
    return needed


def _private_folders(folders: list[Path], needed: list[Path]) -> list[Path]:
    """Of `folders` (the submission's own folder, the reports' folder), those that hold none of what grading
    reads (`needed`, see `_needed_folders`): other learners' submissions and reports, hidden from this one's
    code."""
    hidden = []
    for folder in folders:
        folder = folder.resolve()
        if not any(path == folder or folder in path.parents for path in needed):
            hidden.append(folder)
    return hidden


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def zygote_main(config: dict[str, Any], control: socket.socket) -> None:
    """Run as the zygote (in a process forked from the supervisor, or started by `main`); returns when told to stop
    or when the supervisor goes away."""
    try:
        os.setsid()  # its own session and process group: the supervisor kills it and its tree as one
    except OSError:
        pass
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    config = {**config, "sandbox": sandbox.isolate_zygote()}  # first: a user namespace needs a single thread
    # nothing the supervisor had open (pytest's saved stdout and capture files, the batch's report pipes) reaches it
    os.closerange(3, control.fileno())
    os.closerange(control.fileno() + 1, 1 << 16)
    log = os.open(config.get("log") or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd in (1, 2):  # the learner's prints go to the log, never into the supervisor's output
        os.dup2(log, fd)
    os.close(log)
    os.close(null)
    # the supervisor's sys.stdout may be pytest's capture of a file closed above: print to the new 1 and 2
    sys.stdin = sys.__stdin__ = open(0, "r", closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
    gc.disable()  # start-up makes only long-lived objects (torch's, transformer_lens's): collecting is wasted time
    try:
        zygote = Zygote(config, control)
    except BaseException:
        control.send(json.dumps({"kind": "failed", "message": traceback.format_exc()[-8000:]}).encode())
        return
    gc.freeze()  # children neither scan these objects nor, by touching their headers, copy the pages they lie in
    gc.enable()
    zygote.serve()


def main() -> None:
    """`python -m checks.isolation.worker FD`: a zygote started from a fresh interpreter, its config read from socket FD."""
    control = socket.socket(fileno=int(sys.argv[1]))
    zygote_main(json.loads(control.recv(1 << 20)), control)


if __name__ == "__main__":
    main()
