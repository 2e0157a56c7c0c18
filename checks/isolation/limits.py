"""The limits a grading worker runs under, enforced from outside the learner's code, and how a worker's end is told.

Time limits are wall-clock deadlines kept by the supervisor, which kills the worker's whole process group when one
passes: the check's `timeout_s` per input case (one call of the learner's function), `import_s` for importing the
learner's module, `audit_s` for the checks that run after a call returns (model and input audits, converting the
output), and `submission_s` for everything graded by one supervisor. Memory is capped inside the worker with
RLIMIT_AS before any learner code runs: `memory_bytes` on top of what the warm parent already maps (torch alone maps
about 2 GiB of address space, most of it never touched). `parallel` exercises are graded at a time when a session
plans ahead (`pytest --day`), each in its own worker with `threads` torch threads.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

GiB = 1024**3


@dataclass(frozen=True)
class Limits:
    """What one supervisor allows its workers (seconds, bytes); see the module docstring."""

    import_s: float = 60.0
    audit_s: float = 60.0
    submission_s: float = 1800.0
    memory_bytes: int = 4 * GiB
    setup_s: float = 300.0  # a worker's own start (building inputs outside the zygote, e.g. on CUDA)
    log_bytes: int = 16 << 20  # what a submission's workers may print into its log (the rest is dropped)
    threads: int = 1  # torch threads in a worker: more than 1 hangs when the supervisor ran a multi-threaded op
    parallel: int = field(default_factory=lambda: min(2, _cores()))  # exercises graded at a time

    @classmethod
    def parse(cls, text: str) -> "Limits":
        """Limits from "import_s=2 audit_s=5 submission_s=600 memory_gb=2 log_mb=16 threads=1 parallel=2" (any
        subset; the rest default)."""
        values: dict[str, float | int] = {}
        for item in text.replace(",", " ").split():
            name, _, value = item.partition("=")
            if name == "memory_gb":
                values["memory_bytes"] = int(float(value) * GiB)
            elif name == "log_mb":
                values["log_bytes"] = int(float(value) * 2**20)
            elif name in ("import_s", "audit_s", "submission_s", "setup_s"):
                values[name] = float(value)
            elif name in ("threads", "parallel"):
                values[name] = max(1, int(value))
            else:
                raise ValueError(f"unknown grading limit {name!r} in {text!r}")
        return cls(**values)  # type: ignore[arg-type]


def _cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def describe_end(status: int) -> str:
    """How a process ended, from its `os.waitpid` status, in words a learner understands."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        meaning = {
            "SIGSEGV": "a segmentation fault: native code (e.g. ctypes) touched memory it does not own",
            "SIGKILL": "killed from outside: the kernel's out-of-memory killer, or a kill sent by some process",
            "SIGABRT": "aborted: native code called abort()",
            "SIGBUS": "a bus error in native code",
            "SIGFPE": "a floating-point exception in native code",
            "SIGTERM": "terminated by a signal sent by some process",
            "SIGINT": "interrupted (SIGINT)",
        }.get(name, "ended by a signal")
        return f"was killed by {name} ({meaning})"
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return (f"exited with code {code} before reporting a result (os._exit, or the interpreter was shut down "
                "from inside the function)")
    return f"ended with wait status {status}"
