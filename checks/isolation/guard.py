"""The audit hook a grading child installs before importing the learner's module (PEP 578): no writes to the
course's files, and in instructor grading no reads of the solutions or stored references. Python offers no way to
remove an audit hook; code that bypasses Python (ctypes, native extensions) is not seen by it, which is why the child
also installs the seccomp filter (`checks.isolation.seccomp`) and the supervisor verifies the manifest."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from checks.isolation.protocol import Channel, Forbidden

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CHANGING_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.truncate", "os.chmod", "os.chown", "os.link",
                    "os.symlink", "os.utime", "shutil.rmtree", "os.mkdir", "shutil.move", "shutil.copyfile"}


class CourseFileGuard:
    """An audit hook (PEP 578): refuses writes under `protected`, and with `forbidden` also reads under those
    folders and imports of the `solutions` package, reporting each attempt on the channel. Python offers no way to
    remove an audit hook; code that bypasses Python (ctypes, native extensions) is not seen, which is why the
    supervisor also verifies the manifest."""

    def __init__(self, protected: list[Path], forbidden: list[Path], channel: Channel | None) -> None:
        self.protected = [str(p.resolve()) for p in protected]
        self.forbidden = [str(p.resolve()) for p in forbidden]
        self.channel = channel
        self.busy = False

    def install(self) -> None:
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.busy:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
            self._check(path, writes=bool(writes))
        elif event in _CHANGING_EVENTS:
            for path in args[:2]:
                self._check(path, writes=True)
        elif event == "import" and self.forbidden and args and isinstance(args[0], str):
            if args[0] == "solutions" or args[0].startswith("solutions."):
                self._refuse(f"imported the course's solutions (`import {args[0]}`)")

    def _check(self, path: Any, writes: bool) -> None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        self.busy = True
        try:
            resolved = os.path.realpath(os.fsdecode(path))
        except Exception:
            return
        finally:
            self.busy = False
        if writes and _under(resolved, self.protected):
            raise PermissionError(f"grading forbids changing the course's files: {resolved}")
        if _under(resolved, self.forbidden):
            self._refuse(f"opened {resolved}, one of the course's solutions or stored reference outputs")

    def _refuse(self, what: str) -> None:
        if self.channel is not None:
            self.busy = True
            try:
                self.channel.send(Forbidden(what))
            finally:
                self.busy = False
        raise PermissionError(f"instructor grading forbids this: your code {what}")


def _under(path: str, folders: list[str]) -> bool:
    return any(path == folder or path.startswith(folder + os.sep) for folder in folders)
