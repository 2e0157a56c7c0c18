"""The seccomp filter of a grading child (x86-64 Linux): what no code of the learner's, native code included, may
ask the kernel for."""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

_X86_64_AUDIT_ARCH = 0xC000003E
_DENIED_SYSCALLS = (  # x86-64 numbers: everything that creates, changes or removes a file, and ways out of the worker
    85, 76, 82, 264, 316, 87, 263, 86, 265, 88, 266, 90, 268, 452, 83, 258, 84, 133, 259, 92, 94, 260, 132, 235, 280,
    261, 188, 189, 197, 198, 437, 303, 304, 425, 101, 310, 311, 424, 129, 297,
    91, 93, 190, 199, 272, 308, 165, 166, 155, 161, 319, 447, 29, 321, 298, 323, 428, 429, 430, 431, 432, 433, 442,
    248, 249, 250)
#  creat truncate rename renameat renameat2 unlink unlinkat link linkat symlink symlinkat chmod fchmodat fchmodat2
#  mkdir mkdirat rmdir mknod mknodat chown lchown fchownat utime utimes utimensat futimesat setxattr lsetxattr
#  removexattr lremovexattr openat2 name_to_handle_at open_by_handle_at io_uring_setup ptrace process_vm_readv
#  process_vm_writev pidfd_send_signal rt_sigqueueinfo rt_tgsigqueueinfo
#  fchmod fchown fsetxattr fremovexattr (a descriptor open for reading is enough to re-permission a course file)
#  unshare setns mount umount2 pivot_root chroot (no way back to the supervisor's /proc or mounts)
#  memfd_create memfd_secret shmget (memory that RLIMIT_AS does not count) bpf perf_event_open userfaultfd
#  open_tree move_mount fsopen fsconfig fsmount fspick mount_setattr add_key request_key keyctl
_OPEN, _OPENAT, _KILL, _TKILL, _TGKILL = 2, 257, 62, 200, 234


def forbid_file_changes_and_signals() -> bool:
    """Install a seccomp filter (x86-64 Linux; returns False where it cannot): from now on this process and its
    children cannot open a file for writing, create, rename, delete or re-permission one, signal another process,
    read or write another process's memory, change namespaces or mounts, or allocate memory outside RLIMIT_AS
    (memfd, SysV shared memory); each such call fails with EPERM. Unlike the audit hook, this also
    holds for native code (ctypes, C++ and Rust extensions). Descriptors already open (the result pipe, the log)
    stay writable."""
    encoded = filter_program(os.getpid())
    if encoded is None:
        return False
    buffer = ctypes.create_string_buffer(encoded)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(encoded) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(38, 1, None, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return False
    return libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


_TEMPLATE: list[tuple[bytes, int]] = []  # the filter's instructions with pid 0, and the offset where the pid goes


def filter_program(me: int) -> bytes | None:
    """The filter's BPF program for the process `me`, or None off x86-64 Linux. Built once (a zygote builds it
    before forking: see `checks.isolation.zygote`); each child only writes its own pid into it."""
    import platform
    import struct

    if sys.platform != "linux" or platform.machine() != "x86_64":
        return None
    if not _TEMPLATE:
        allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
        write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        program: list[tuple[int, Any, Any, int]] = [(0x20, 0, 0, 4), (0x15, 0, "ALLOW", _X86_64_AUDIT_ARCH),
                                                    (0x20, 0, 0, 0)]
        program += [(0x15, "DENY", 0, number) for number in _DENIED_SYSCALLS]
        program += [(0x15, "OPEN", 0, _OPEN), (0x15, "OPENAT", 0, _OPENAT), (0x15, "SELF", 0, _KILL),
                    (0x15, "SELF", 0, _TKILL), (0x15, "SELF", 0, _TGKILL), (0x06, 0, 0, allow)]
        labels = {"OPEN": len(program)}
        program += [(0x20, 0, 0, 16 + 8 * 1), (0x45, "DENY", 0, write_flags), (0x06, 0, 0, allow)]
        labels["OPENAT"] = len(program)
        program += [(0x20, 0, 0, 16 + 8 * 2), (0x45, "DENY", 0, write_flags), (0x06, 0, 0, allow)]
        labels["SELF"] = len(program)
        program += [(0x20, 0, 0, 16), (0x15, "ALLOW", 0, 0)]  # the pid is written in by `_filter`
        labels["DENY"] = len(program)
        program += [(0x06, 0, 0, deny)]
        labels["ALLOW"] = len(program)
        program += [(0x06, 0, 0, allow)]
        encoded = b""
        for index, (code, jt, jf, k) in enumerate(program):
            jt = labels[jt] - index - 1 if isinstance(jt, str) else jt
            jf = labels[jf] - index - 1 if isinstance(jf, str) else jf
            encoded += struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)
        _TEMPLATE.append((encoded, 8 * (labels["SELF"] + 1) + 4))  # the k field of the comparison with the pid
    encoded, offset = _TEMPLATE[0]
    return encoded[:offset] + (me & 0xFFFFFFFF).to_bytes(4, sys.byteorder) + encoded[offset + 4:]
