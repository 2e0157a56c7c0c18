"""The grading worker: the processes that run learner code, apart from the supervisor (`checks.isolation.supervisor`).

A worker is a warm parent, the zygote (`checks.isolation.zygote`: the course, pristine models and prebuilt inputs,
loaded once), which forks one child per exercise (`checks.isolation.child`: sandboxed, it imports the learner's file,
calls the exercise and sends its outputs back as plain data). The supervisor forks the zygote from its own process,
or `mechinterp_course_pytest` forks it first thing (`checks.isolation.zygote.prestart`); one that died is replaced by
`python -m checks.isolation.worker FD`, a zygote started from a fresh interpreter with its config read from socket FD.
Frames on a child's result pipe: `checks.isolation.protocol` (plain data, bounded, read without running any code).
"""

from __future__ import annotations

import socket
import sys

from checks.isolation.protocol import ZygoteConfig
from checks.isolation.zygote import zygote_main


def main() -> None:
    """`python -m checks.isolation.worker FD`: a zygote started from a fresh interpreter, its config read from socket FD."""
    control = socket.socket(fileno=int(sys.argv[1]))
    zygote_main(ZygoteConfig.from_json(control.recv(1 << 20)), control)


if __name__ == "__main__":
    main()
