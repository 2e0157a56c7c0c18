"""Where a grading worker runs: out of sight of the supervisor, with no network, and reading only what it may.

Linux only; every step is tried and reported, never fatal (elsewhere, or where the kernel lacks a feature, grading
runs with what holds: see README, "How grading works").

- `harden_supervisor`: the supervisor (which holds the stored references in memory) makes itself non-dumpable, so a
  process of the same user without CAP_SYS_PTRACE cannot open its /proc/<pid>/mem, fd/ or environ.
- `isolate_zygote`: the warm parent enters a new user namespace (capabilities only inside it, none over the
  supervisor, even when started as root) and a new network namespace (no interface but a downed loopback).
- `start_pid_namespace`: per exercise, the learner's process and every process it starts live in a new PID
  namespace (with a `sleep` as its process 1), which the kernel empties when the exercise's process group is
  killed (a double fork, a new session, a fork loop all end with it); `mount_own_proc` gives it a /proc of its own,
  where the supervisor and every other process are out of sight.
- `drop_capabilities`: the learner's process holds no capability, in any namespace.
- `restrict_files`: Landlock (kernel 5.13+): the learner's process reads only outside the `forbidden` folders (plus
  the `allowed` files inside them), writes nowhere, and (ABI 6+) signals nobody outside its domain; a Landlock
  domain also refuses ptrace-style access (/proc/<pid>/mem) to every process outside it.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x4000, 1 << 18, 2, 4, 8
PR_SET_DUMPABLE = 4
_LINUX = sys.platform == "linux"


def _libc() -> ctypes.CDLL | None:
    if not _LINUX:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        return libc
    except OSError:
        return None


def harden_supervisor() -> bool:
    """Make this process non-dumpable (see the module docstring); False where that is not possible."""
    libc = _libc()
    return bool(libc) and libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def drop_capabilities() -> bool:
    """Drop every capability of this process (effective, permitted, inheritable): a worker started as root keeps
    uid 0 but, even where there is no user namespace, cannot ptrace, read a non-dumpable process's memory, or
    bypass file permissions (its owner's rights remain). False where capset fails."""
    libc = _libc()
    if libc is None:
        return False
    header = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0), 8)  # _LINUX_CAPABILITY_VERSION_3, self
    data = ctypes.create_string_buffer(24)  # two {effective, permitted, inheritable} words, all zero
    return libc.syscall(126, header, data) == 0  # capset (x86-64)


def isolate_zygote() -> list[str]:
    """Enter new user and network namespaces (call while single-threaded: right after the fork); returns what
    holds, in words ("user namespace", "no network"), empty where unprivileged user namespaces are unavailable."""
    libc = _libc()
    if libc is None:
        return []
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # forked from a non-dumpable supervisor: /proc/self must be ours to write
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        return []
    try:
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    except OSError:
        return ["no network"]
    return ["user namespace", "no network"]


def start_pid_namespace(close: list[int]) -> int | None:
    """Put every process this one starts from now on into a new PID namespace, whose process 1 is a `sleep` spawned
    here in this process's group (closing `close` and the standard streams in it); returns its pid, or None where
    PID namespaces are unavailable. When the group is killed at the exercise's end, that process dies, and with it,
    by the kernel's hand, every process the exercise started, whatever session or group it moved to. (Spawned, not
    forked: no copy of this process's page tables. This process can start no thread from now on: the caller forks
    the one that runs the learner's code.)"""
    libc = _libc()
    sleep = next((path for path in ("/bin/sleep", "/usr/bin/sleep") if os.path.exists(path)), None)
    if libc is None or sleep is None or libc.unshare(CLONE_NEWPID) != 0:
        return None
    actions = [(os.POSIX_SPAWN_CLOSE, fd) for fd in close]
    actions += [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:
        return os.posix_spawn(sleep, ["sleep", "infinity"], {}, file_actions=actions)
    except OSError:
        return None


def mount_own_proc() -> bool:
    """In a process of a new PID namespace: a private mount namespace whose /proc shows only that namespace (the
    supervisor and every other process out of sight)."""
    libc = _libc()
    if libc is None or libc.unshare(CLONE_NEWNS) != 0:
        return False
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False
    return libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None) == 0


# ---- Landlock --------------------------------------------------------------------------------------------------------
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same numbers on every architecture
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1, 2, 4, 8
_WRITES_V1 = sum(1 << bit for bit in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
_REFER, _TRUNCATE = 1 << 13, 1 << 14
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1, 2


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none)."""
    libc = _libc()
    if libc is None:
        return 0
    version = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, int(version))


def restrict_files(forbidden: list[Path], allowed: list[Path]) -> bool:
    """Landlock this process (and what it starts): read anything except beneath `forbidden` (the files in `allowed`
    stay readable), write no file, create or remove nothing, and with ABI 6+ signal no process outside. Needs
    no_new_privs set (the seccomp filter sets it); False where Landlock is unavailable. The ruleset comes from
    `prepare_ruleset` (built then, unless a parent built it before forking); this process's copy of its descriptor is
    closed before this returns, so nothing run afterwards can add a rule to the parent's."""
    libc = _libc()
    ruleset = prepare_ruleset(forbidden, allowed)
    if ruleset is None or libc is None:
        return False
    _RULESETS.clear()
    try:
        return libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) == 0
    finally:
        os.close(ruleset)


_RULESETS: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {}


def prepare_ruleset(forbidden: list[Path], allowed: list[Path]) -> int | None:
    """The descriptor of a Landlock ruleset for `restrict_files(forbidden, allowed)`, built once and kept (one at a
    time) for the processes this one forks; None where Landlock is unavailable."""
    key = _key(forbidden, allowed)
    if key in _RULESETS:
        return _RULESETS[key]
    abi = landlock_abi()
    libc = _libc()
    if abi < 1 or libc is None:
        return None
    reads = _EXECUTE | _READ_FILE | _READ_DIR
    handled = reads | _WRITE_FILE | _WRITES_V1 | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    scoped = (_SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("QQQ", handled, 0, scoped)  # handled_access_fs, handled_access_net, scoped
    size = 24 if abi >= 6 else 8
    buffer = ctypes.create_string_buffer(attr[:size], size)
    ruleset = libc.syscall(_CREATE_RULESET, buffer, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return None
    for path, access in prepare_rules(forbidden, allowed):
        try:  # a symbolic link is skipped: its target is covered where it lies (a rule would follow it)
            fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        if os.path.islink(path):
            os.close(fd)
            continue
        try:
            is_dir = os.path.isdir(path)
            rule = struct.pack("=Qi", access if is_dir else access & (_EXECUTE | _READ_FILE), fd)
            libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.c_char_p(rule),
                         ctypes.c_uint32(0))  # LANDLOCK_RULE_PATH_BENEATH
        finally:
            os.close(fd)
    for old in _RULESETS.values():
        os.close(old)
    _RULESETS.clear()
    _RULESETS[key] = ruleset
    return ruleset


def _key(forbidden: list[Path], allowed: list[Path]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(os.path.realpath(path) for path in forbidden), tuple(os.path.realpath(path) for path in allowed)


_RULES: dict[tuple[tuple[str, ...], tuple[str, ...]], list[tuple[str, int]]] = {}


def prepare_rules(forbidden: list[Path], allowed: list[Path]) -> list[tuple[str, int]]:
    """The (path, access) rules of `restrict_files(forbidden, allowed)`, kept for the processes this one forks
    (a warm parent prepares them once; each child only applies them)."""
    key = _key(forbidden, allowed)
    if key not in _RULES:
        _RULES.clear()
        _RULES[key] = _read_rules(list(key[0]), list(key[1]))
    return _RULES[key]


def _read_rules(forbidden: list[str], allowed: list[str]) -> list[tuple[str, int]]:
    """(path, access) rules granting reads everywhere but beneath `forbidden`: a Landlock rule covers a whole tree,
    so every folder above a forbidden one gets only listing, and each of its other entries full reads."""
    reads = _EXECUTE | _READ_FILE | _READ_DIR
    forbidden = [folder for folder in forbidden  # one inside another is covered by it
                 if not any(other in map(str, Path(folder).parents) for other in forbidden)]
    above = {parent for folder in forbidden for parent in map(str, Path(folder).parents)}
    rules: list[tuple[str, int]] = []
    for folder in sorted(above):
        rules.append((folder, _READ_DIR))
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(folder, entry)
            if path not in above and path not in forbidden:
                rules.append((path, reads))
    if not forbidden:
        rules.append(("/", reads))
    rules += [(path, _EXECUTE | _READ_FILE | (_READ_DIR if os.path.isdir(path) else 0)) for path in allowed]
    return rules
