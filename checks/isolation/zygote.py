"""The worker's warm parent (the zygote): one process that holds the course, pristine models and prebuilt inputs,
and forks one child (`checks.isolation.child`) per exercise the supervisor asks for.

It imports torch and transformer_lens, limits torch to one thread, loads the course's specs, on CPU builds every input
case of the graded days (loading the zoo models), and imports what the days' files import (plotting, jaxtyping), all
before any learner code exists in it; it then freezes the garbage collector's view of what it holds (children neither
scan it nor copy its pages by touching it). Per exercise (several may run at a time) it forks a child that leaves its
process group, closes the zygote's sockets and, where the kernel allows, makes a PID namespace and forks the process
that runs the learner's code into it (with its own /proc), so that every process the exercise started dies with it.
The zygote is a child subreaper: after each exercise it kills every process the child left behind
(`checks.isolation.reaper`), and says on the exercise's channel that the child ended. What children print reaches the
log through it, capped; it holds none of the supervisor's descriptors. Where the kernel allows
(`checks.isolation.sandbox`), it runs in its own user and network namespaces.

Torch's OpenMP pool does not survive fork: a child that uses several threads hangs when its parent already ran a
multi-threaded region (measured with torch 2.13), so the zygote stays at one thread and only children raise it. CUDA
does not survive fork either, so on CUDA each child builds its own inputs.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import importlib
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
from checks.isolation.child import HELD, Child, build_case
from checks.isolation.protocol import Channel, Control, ZygoteConfig, control_message
from checks.isolation.reaper import kill_leftovers
from checks.isolation.seccomp import filter_program
from curriculum.tools.paths import COURSE_ROOT


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass



PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


class Zygote:
    """The warm parent: holds the course, pristine models and prebuilt inputs; forks one child per exercise."""

    def __init__(self, config: ZygoteConfig, control: socket.socket) -> None:
        import torch

        torch.set_num_threads(1)  # see the module docstring: the parent's OpenMP pool must stay single-threaded
        from checks.course import Course
        from checks.pipeline.env import Env

        self.config = config
        self.control = control
        self.sandbox: list[str] = config.sandbox
        self.log_bytes = self.log_left = config.log_bytes
        self.log_cut = False
        self.course = Course(Path(config.root), config.loader)
        self.days = {number: self.course.day(number) for number in config.days}
        self.env = Env(config.device, self.course.load_model_function())
        self.prebuilt: dict[tuple[str, str], tuple[Any, Any] | str] = {}
        if config.prebuild:
            for day in self.days.values():
                for check in day.checks:
                    for case in check.cases:
                        self.prebuilt[check.name, case] = build_case(self.env, check, case)
        import checks.pipeline.grading  # noqa: F401  (used by every child)
        import checks.pipeline.learner  # noqa: F401

        for day in self.days.values():
            import_day_dependencies(day)
        filter_program(0)  # the seccomp filter, built once for every child
        self._needed = _needed_folders()
        self._confinements: dict[str, tuple[list[Path], list[Path], list[Path]]] = {}
        self._compiled: dict[tuple[str, int, int, int], Any] = {}

    def confinement(self, learner: Path) -> tuple[list[Path], list[Path], list[Path]]:
        """For an exercise of `learner`: (the folders no write may touch, the ones no read may touch in instructor
        grading, the folders Landlock hides), worked out once per learner's file in the zygote, as are Landlock's
        rules for them (`sandbox.prepare_rules`): a child only applies them."""
        key = str(learner)
        if key not in self._confinements:
            config = self.config
            roots = [self.course.root] + [Path(p) for p in config.protect]
            forbidden = [path for root in roots for path in (root / "solutions", root / "checks" / "references")]
            unreadable = forbidden + [root / "notebooks" / "instructor" for root in roots] + _private_folders(
                [learner.parent] + [Path(p) for p in config.protect[1:]], self._needed)
            self._confinements = {key: (roots, forbidden, unreadable)}  # one learner's file at a time
            sandbox.prepare_ruleset(unreadable if config.forbid_reads else [], [learner])
        return self._confinements[key]

    def compiled(self, learner: Path) -> Any:
        """`learner` as it is now, compiled (a `checks.pipeline.learner.CompiledLearner`: parsed and compiled, never
        run) once for all its exercises (tens of ms each); None for a notebook, a file over 1 MiB or one that does
        not compile, which each child then compiles itself (saying why it fails)."""
        from checks.pipeline.learner import CompiledLearner

        try:
            stat = learner.stat()
        except OSError:
            return None
        key = (str(learner), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in self._compiled:
            self._compiled = {key: None}  # one learner's file at a time
            if learner.suffix == ".py" and stat.st_size <= 1 << 20:
                try:
                    self._compiled[key] = CompiledLearner(learner)
                except Exception:
                    pass
        return self._compiled[key]

    def serve(self) -> None:
        """Answer the supervisor's requests and report each child's end, several children at a time: each request
        comes with its own channel (a socket), on which its child's start and exit are said. What the children
        print comes through a pipe each and goes to the log, at most `log_bytes` in all (then it is dropped)."""
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.control.send(control_message(Control.READY, pid=os.getpid(), sandbox=self.sandbox))
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
                    item.channel.send(control_message(Control.EXITED, pid=pid, status=status))
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
                if request["kind"] == Control.LOG:  # the next submission's log (sent between submissions)
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
            self.compiled(Path(request["learner"]))
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
                init = sandbox.start_pid_namespace([write_end])
                HELD["pid_namespace"] = init is not None
                if init is not None:
                    _run_in_namespace(lambda: Child(self, request, Channel(write_end)).run(), write_end, init)
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
            socket.send_fds(channel, [control_message(Control.STARTED, pid=pid)], [read_end])
        except OSError:
            pass  # the supervisor gave up on this run: the child ends with nobody reading it
        os.close(read_end)
        pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
        return _Running(pid, channel, pidfd, output_read)


class _Running:
    """The zygote's record of a running child: its channel to the supervisor, its pidfd and its output pipe."""

    def __init__(self, pid: int, channel: socket.socket, pidfd: int | None, output: int | None):
        self.pid, self.channel, self.pidfd, self.output = pid, channel, pidfd, output


def _run_in_namespace(run: Callable[[], None], channel: int, init: int | None = None) -> None:
    """In a child that has just made a PID namespace (whose process 1 is `init`): fork the process that calls `run`
    into it (process 2: a process that makes a PID namespace can start no thread, and process 1 ignores its own
    signals), wait for it, empty the namespace, and end the same way (exit code or signal), so the zygote and the
    supervisor see the learner's process end."""
    pid = os.fork()
    if pid == 0:
        try:
            _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
            HELD["own_proc"] = sandbox.mount_own_proc()
            run()
        finally:
            os._exit(0)
    os.close(channel)
    _, status = os.waitpid(pid, 0)
    if init is not None:  # the namespace's process 1: with it dies, by the kernel's hand, whatever is left in it
        try:
            os.kill(init, signal.SIGKILL)
            os.waitpid(init, 0)
        except OSError:
            pass
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


_HUGE_PAGE = 2 << 20
_MADV_COLLAPSE = 25


def collapse_into_huge_pages() -> int:
    """Move this process's private writable memory (the heap and anonymous mappings: Python's objects, the models,
    the prebuilt inputs) into 2 MiB pages (`MADV_COLLAPSE`, Linux 6.1+); returns the bytes collapsed.

    A fork copies one page-table entry per 4 KiB page the parent wrote, and an exit unmaps them all again: with ~380 MB
    of such memory, each fork and each exit of a child costs tens of ms (measured: fork 44 ms, exit 47 ms, on a
    busy 2-core machine), twice per exercise. In 2 MiB pages both cost a few ms; a child that writes into one gets a
    copy of the 4 KiB it wrote, as before. Collapsing costs about a second (copying into fresh huge pages), which
    pays off over a batch's hundreds of exercises, not over one day's. Where the kernel lacks it, nothing changes."""
    libc = sandbox._libc()
    if libc is None:
        return 0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    collapsed = 0
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return 0
    for line in maps:
        fields = line.split()
        if len(fields) < 5 or not fields[1].startswith("rw") or fields[1][3] != "p":
            continue
        if len(fields) > 5 and fields[5] != "[heap]":  # a file's pages, or the stack
            continue
        start, end = (int(bound, 16) for bound in fields[0].split("-"))
        start = -(-start // _HUGE_PAGE) * _HUGE_PAGE
        end = end // _HUGE_PAGE * _HUGE_PAGE
        if end - start < _HUGE_PAGE:
            continue
        if madvise(start, end - start, _MADV_COLLAPSE) == 0:
            collapsed += end - start
    return collapsed


def zygote_main(config: ZygoteConfig | None, control: socket.socket) -> None:
    """Run as the zygote (in a process forked from the supervisor, or started by `main`); returns when told to stop
    or when the supervisor goes away. With `config` None (a zygote started ahead, see `prestart`) it imports what
    every zygote needs first, then reads its config from `control`."""
    try:
        os.setsid()  # its own session and process group: the supervisor kills it and its tree as one
    except OSError:
        pass
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
    held = sandbox.isolate_zygote()  # first: a user namespace needs a single thread
    # nothing the supervisor had open (pytest's saved stdout and capture files, the batch's report pipes) reaches it
    os.closerange(3, control.fileno())
    os.closerange(control.fileno() + 1, 1 << 16)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    # the supervisor's sys.stdout may be pytest's capture of a file closed above: print to the new 1 and 2
    sys.stdin = sys.__stdin__ = open(0, "r", closefd=False)
    sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, closefd=False, errors="backslashreplace")
    sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
    gc.disable()  # start-up makes only long-lived objects (torch's, transformer_lens's): collecting is wasted time
    if config is None:
        _warm_up()
        try:
            data = control.recv(1 << 20)
        except OSError:
            return
        if not data:  # the supervisor went away, or never needed this zygote
            return
        config = ZygoteConfig.from_json(data)
    config = dataclasses.replace(config, sandbox=held)
    log = os.open(config.log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for fd in (1, 2):  # the learner's prints go to the log, never into the supervisor's output
        os.dup2(log, fd)
    os.close(log)
    try:
        zygote = Zygote(config, control)
    except BaseException:
        control.send(control_message(Control.FAILED, message=traceback.format_exc()[-8000:]))
        return
    gc.freeze()  # children neither scan these objects nor, by touching their headers, copy the pages they lie in
    gc.enable()
    if config.huge_pages:  # it pays for itself after some tens of exercises: a batch's
        collapse_into_huge_pages()
    zygote.serve()


def _warm_up() -> None:
    """Import what every zygote imports whatever its config (torch, transformer_lens, the grading pipeline): the
    seconds a zygote takes to start, spent while the supervisor starts up too."""
    for name in ("torch", "transformer_lens", "checks.course", "checks.pipeline.env", "checks.pipeline.inputs",
                 "checks.pipeline.grading", "checks.pipeline.learner", "checks.judging.judge"):
        try:
            importlib.import_module(name)
        except Exception:
            pass  # said, if it matters, when the zygote starts for real
    import torch

    torch.set_num_threads(1)


_PRESTARTED: list[tuple[int, socket.socket]] = []


def prestart() -> None:
    """Fork a zygote now, as soon as this process has imported torch (`mechinterp_course_pytest` calls this first
    thing with `--day`), so that its other imports (transformer_lens: seconds) run beside the supervisor's start-up;
    `take_prestarted` hands it to the supervisor, which sends it its config. Unused, it ends with this process
    (PR_SET_PDEATHSIG) or when its socket closes."""
    if _PRESTARTED:
        return
    import torch  # noqa: F401  (the supervisor imports it anyway: imported once, inherited by the zygote)

    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            mine.close()
            zygote_main(None, theirs)
        finally:
            os._exit(0)
    theirs.close()
    _PRESTARTED.append((pid, mine))


def take_prestarted() -> tuple[int, socket.socket] | None:
    """The zygote `prestart` started (its pid and control socket), once; None if there is none."""
    return _PRESTARTED.pop() if _PRESTARTED else None


def discard_prestarted() -> None:
    """Stop the zygote `prestart` started if no supervisor took it (e.g. the options were refused)."""
    waiting = take_prestarted()
    if waiting is not None:
        pid, control = waiting
        control.close()
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
