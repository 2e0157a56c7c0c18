"""The zygote's reaper: after each exercise, every process its child left behind dies (the zygote is a child
subreaper, so even a process that started its own session is reparented to it and found in /proc)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

def children(parent: int) -> list[int]:
    """The pids of `parent`'s children: from /proc/<parent>/task/*/children where the kernel has it (a read per
    thread), else by scanning every process's stat."""
    try:
        return [int(pid) for task in os.listdir(f"/proc/{parent}/task")
                for pid in Path(f"/proc/{parent}/task/{task}/children").read_text().split()]
    except (OSError, ValueError):
        pass
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(parent):
            found.append(int(entry))
    return found


def kill_leftovers(pid: int, spare: set[int]) -> None:
    """Kill the finished child's process group and every process left behind (reparented to us, the subreaper),
    sparing the children in `spare` (still running their exercises)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    for _ in range(200):
        leftovers = [child for child in children(os.getpid()) if child not in spare]
        for child in leftovers:
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
        for child in leftovers:
            try:
                os.waitpid(child, os.WNOHANG)
            except ChildProcessError:
                pass
        if not leftovers:
            return
        time.sleep(0.01)
