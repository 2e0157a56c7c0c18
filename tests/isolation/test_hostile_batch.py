"""Hostile submissions in a batch (`python -m checks grade`): none may lose or falsify another's grade. Each batch
mixes honest submissions (the fixture course's day-1 solution) with hostile ones, and asserts that every honest one
gets 7/7, every hostile one fails what it cheated on, and what the batch writes (reports, logs, summary) is sound.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from checks.__main__ import main as checks_main
from support import READ_ANOTHER_PROCESS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EXERCISES = ("attention_pattern", "mean_logit", "count_repeats", "describe_shape", "head_summary",
             "distinct_tokens", "slow_sum")
RIGHT = "int((tokens[:, 1:] == tokens[:, :-1]).sum())"

# A process chain that tries to outlive its submission and drain the batch process's report pipes (the reports of the
# submissions graded after it). It leaves the exercise's process group and becomes a small interpreter (quick to
# fork), keeping five links below the one exposed to the worker's parent, which kills the processes left behind by
# an exercise by scanning for its own children: a scan kills the exposed link, the next takes its place and the last
# forks another, so the scanner gives up first. Once nobody hunts it (the worker's parent is gone), it opens every
# pipe the batch process makes and reads it, blocking: woken by a report's write before the batch is, it takes the
# report. The exercise returns once the chain stands, so it is not caught while it grows. On the grader before each
# exercise had its own PID namespace (commit 2a94d82), it took the reports of both honest submissions after it.
CHAIN = """
import ctypes, os, sys, threading, time
hunter, batch, first, ready = map(int, sys.argv[1:5])  # first: the exercise's process, until it ends
end = time.monotonic() + 60
NAME, LINKS = "course-survivor", 6
ctypes.CDLL(None).prctl(15, NAME.encode(), 0, 0, 0)  # PR_SET_NAME: how links know each other, and the test them


def read(pid, what):
    try:
        with open(f"/proc/{pid}/{what}") as file:
            return file.read()
    except OSError:
        return ""


def pipes():
    found = {}
    try:
        for fd in os.listdir(f"/proc/{batch}/fd"):
            try:
                link = os.readlink(f"/proc/{batch}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("pipe:"):
                found[link] = fd
    except OSError:
        pass
    return found


known = set(pipes())  # the pipes of the submissions graded so far: the chain wants the next ones


def swallow(handle):
    while time.monotonic() < end and os.read(handle, 1 << 20):
        pass


def drain():
    while time.monotonic() < end:
        for link, fd in pipes().items():
            if link not in known:
                known.add(link)
                try:
                    handle = os.open(f"/proc/{batch}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
                except OSError:
                    continue
                os.set_blocking(handle, True)
                threading.Thread(target=swallow, args=(handle,), daemon=True).start()
        time.sleep(0.002)


forked = False
while time.monotonic() < end:
    above, outside = 0, os.getppid()  # the links above this one, and the first process above them
    while read(outside, "comm").strip() == NAME:
        above += 1
        outside = int(read(outside, "stat").rsplit(")", 1)[-1].split()[1] or 0)
    if above == 0 and outside not in (first, hunter):  # nobody hunts the chain any more
        if ready >= 0:
            os.close(ready)
        drain()
        break
    if not forked and above < LINKS - 1:  # the exposed link and five below it
        if os.fork() == 0:
            continue
        forked = True
    if ready >= 0 and (forked or above == LINKS - 1):
        if above == LINKS - 1:  # the exercise waits for this before it returns: the chain is never caught growing
            os.write(ready, b"ready")
        os.close(ready)
        ready = -1
    time.sleep(0.005)
os._exit(0)
"""
DRAINER = f"""
import os, select, sys
_CHAIN = {CHAIN!r}
_STARTED = []
def count_repeats(tokens):
    if not _STARTED:  # once, on the first input case
        _STARTED.append(True)
        ready, told = os.pipe()
        os.set_inheritable(told, True)
        args = [str(os.getppid()), "BATCH", str(os.getpid()), str(told)]
        if os.fork() == 0:
            try:
                os.setsid()
                try:
                    os.execv(sys.executable, [sys.executable, "-S", "-c", _CHAIN, *args])
                except OSError:  # exec refused: the chain runs in this interpreter
                    sys.argv = ["chain", *args]
                    exec(_CHAIN, {{"__name__": "chain"}})
            finally:
                os._exit(0)
        os.close(told)
        select.select([ready], [], [], 10)
    return {RIGHT}
"""

# Another learner's submission, from the same folder, graded as this one's.
COPIER = "import importlib.util, os\n\n\ndef _other():\n" + textwrap.indent(textwrap.dedent("""
    spec = importlib.util.spec_from_file_location("other", os.path.join(os.path.dirname(__file__), "ana_day1.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
"""), "    ") + "".join(f"\n\ndef {name}(**inputs):\n    return _other().{name}(**inputs)\n" for name in EXERCISES)

FORGER = """
import gc, os
from checks.isolation.protocol import encode
def count_repeats(tokens):
    channel = next(o for o in gc.get_objects() if type(o).__name__ == "Channel")
    os.write(channel.fd, encode({"kind": "rejection", "case": "", "status": "error",
                                 "message": "forged: the course's fault", "hint": ""}))
    os._exit(0)
"""

THIEF = READ_ANOTHER_PROCESS + f"""
_STOLEN = _read_another_process()
def count_repeats(tokens):
    if _STOLEN is None:
        raise PermissionError("no other process's memory could be read")
    return {RIGHT}
"""

FLOOD = """
def describe_shape(tokens):
    for _ in range(24):
        print("x" * 2**20, flush=True)
    return f"batch={tokens.shape[0]}, pos={tokens.shape[1]}"
"""


# Everything a submission might reach of what the submissions graded by one job share (its warm worker parent, the
# models and inputs it holds, torch's global state, the log): each attempt made, then the right answer returned.
TAMPERER = f"""
import gc, os, signal, sys
def _tamper(tokens):
    import torch
    for entry in os.listdir("/proc"):  # every process in sight, the warm parent first if it can be seen
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{{entry}}/mem", "r+b") as mem:
                    mem.write(b"x")
            except OSError:
                pass
            for number in (signal.SIGSTOP, signal.SIGKILL):
                try:
                    os.kill(int(entry), number)
                except OSError:
                    pass
    for value in gc.get_objects():
        if isinstance(value, torch.nn.Module):
            for parameter in value.parameters():
                parameter.data.zero_()
        elif type(value) is torch.Tensor:
            value.zero_()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(1)
    for fd in range(3, 64):  # any channel it can still write to
        try:
            os.write(fd, b"\\x00" * 64)
        except OSError:
            pass
    sys.stdout.write("z" * (17 << 20))  # past the log's cap: the next submission's log must start afresh
def count_repeats(tokens):
    answer = {RIGHT}
    _tamper(tokens)
    return answer
"""


def _write(folder: Path, name: str, course, hostile: str | None) -> Path:
    solution = course.days[1].solution_path.read_text()
    path = folder / f"{name}_day1.py"
    path.write_text(COPIER if hostile == COPIER else solution + ("\n\n" + hostile if hostile else "") + "\n")
    return path


def _grade(tmp: Path, course, submissions: list[Path], jobs: int) -> tuple[dict, dict]:
    out = tmp / "grades"
    code = checks_main(["grade", "--day", "1", "--root", str(course.root), "--models", course.model_loader,
                        "--out", str(out), "--device", "cpu", "--jobs", str(jobs), *map(str, submissions)])
    assert code in (0, 1)
    statuses = {}
    for path in submissions:
        name = path.stem
        report = json.loads((out / f"{name}.json").read_text())
        statuses[name] = {entry["exercise"]: (entry["status"], entry["message"]) for entry in report["exercises"]}
    rows = {row["submission"]: row for row in csv.DictReader(open(out / "summary.csv"))}
    return statuses, rows


def _survivors() -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == "course-survivor":
                found.append(entry)
        except OSError:
            pass
    return found


def _all_passed(statuses: dict, name: str) -> None:
    assert {exercise: status for exercise, (status, _) in statuses[name].items()} == dict.fromkeys(EXERCISES,
                                                                                                    "passed"), name


def test_the_draining_chain_empties_the_pipes_of_a_process_it_can_reach():
    """The attack of the test below, reproduced where nothing contains it: from an ordinary process of the same
    user, the chain (hunted by nobody) takes what is written into a pipe another process made after it started."""
    victim = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, sys, time
        print(os.getpid(), flush=True)
        sys.stdin.readline()
        read_end, write_end = os.pipe()  # as the batch's pipe for the next submission's report
        time.sleep(1.0)
        os.write(write_end, b"the report of the next submission")
        time.sleep(0.5)
        os.set_blocking(read_end, False)
        try:
            print(os.read(read_end, 100).decode())
        except BlockingIOError:
            print("drained")
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    chain = None
    try:
        pid = victim.stdout.readline().strip()
        chain = subprocess.Popen([sys.executable, "-S", "-c", CHAIN, "0", pid, "0", "-1"])
        while str(chain.pid) not in _survivors() and chain.poll() is None:
            time.sleep(0.01)
        time.sleep(0.5)  # it has listed the victim's pipes so far
        output, _ = victim.communicate("go\n", timeout=60)
    finally:
        victim.kill()
        if chain is not None:
            chain.kill()
            chain.wait()
    assert output.strip() == "drained"


def test_a_process_chain_cannot_drain_the_reports_of_the_submissions_after_it(pytester, built_course):
    drainer = DRAINER.replace("BATCH", str(os.getpid()))  # the batch process: this one
    submissions = [_write(pytester.path, "drainer", built_course, drainer),
                   _write(pytester.path, "ana", built_course, None), _write(pytester.path, "bea", built_course, None)]
    try:
        statuses, rows = _grade(pytester.path, built_course, submissions, jobs=1)
        survivors = _survivors()
    finally:  # where grading let it escape, it must not drain the pipes of the tests that follow
        deadline = time.monotonic() + 10
        while _survivors() and time.monotonic() < deadline:  # a link killed, the next forks: until none is left
            for pid in _survivors():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.01)
    _all_passed(statuses, "ana_day1")
    _all_passed(statuses, "bea_day1")
    assert rows["ana_day1"]["passed"] == rows["bea_day1"]["passed"] == "7"
    assert not survivors, "a process the submission started outlived its grading"


def test_hostile_submissions_beside_honest_ones_leave_every_honest_grade_true(pytester, built_course):
    folder = pytester.path
    submissions = [_write(folder, "ana", built_course, None), _write(folder, "copier", built_course, COPIER),
                   _write(folder, "forger", built_course, FORGER), _write(folder, "thief", built_course, THIEF),
                   _write(folder, "flood", built_course, FLOOD), _write(folder, "bea", built_course, None)]
    statuses, rows = _grade(folder, built_course, submissions, jobs=2)
    _all_passed(statuses, "ana_day1")
    _all_passed(statuses, "bea_day1")
    # another learner's file is out of reach: every exercise fails, none is the other learner's pass
    assert {status for status, _ in statuses["copier_day1"].values()} == {"failed"}
    # a forged status is a failure, never "not started" or the course's error
    assert statuses["forger_day1"]["count_repeats"][0] == "failed"
    assert "forged: the course's fault" in statuses["forger_day1"]["count_repeats"][1]  # the frame was read
    assert rows["forger_day1"]["course_errors"] == "0" and rows["forger_day1"]["passed"] == "6"
    # no other process's memory can be read, not even from a module-level assignment
    assert statuses["thief_day1"]["count_repeats"][0] == "failed"
    assert rows["thief_day1"]["passed"] == "6"
    # a flood of output is cut in the log, and loses nothing of the report
    assert rows["flood_day1"]["passed"] == "7"
    assert (folder / "grades" / "flood_day1.log").stat().st_size < 17 * 2**20
    # an exercise written exactly as the reference solution is flagged for the instructor (the honest submissions
    # here are the solution itself; the flood rewrote describe_shape)
    flagged = {path.stem: json.loads((folder / "grades" / f"{path.stem}.json").read_text()).get(
        "identical_to_solution", []) for path in submissions}
    assert flagged["ana_day1"] == list(EXERCISES) and "identical to the reference solution" in rows["ana_day1"]["note"]
    assert flagged["flood_day1"] == [name for name in EXERCISES if name != "describe_shape"]
    assert flagged["copier_day1"] == []


def test_a_re_permissioned_course_file_is_given_back_its_mode_and_restoring_never_raises(fresh_course, monkeypatch):
    """A course file whose mode a submission changed (seccomp refuses fchmod on Linux x86-64; elsewhere it may
    happen) gets its mode back; one its owner cannot read any more is made readable and checked, never left to
    raise in the supervisor or the batch process."""
    import stat

    from checks.store import manifest

    expected = manifest.verify_manifest(fresh_course)
    contents, stats = manifest.file_contents(fresh_course), manifest.file_stats(fresh_course)
    target = next(path for path in manifest.manifest_files(fresh_course) if path.suffix == ".pt")
    key = manifest._key(fresh_course, target)
    mode = stat.S_IMODE(target.stat().st_mode)
    target.chmod(0)
    assert manifest.restore_changed(fresh_course, expected, contents, stats) == [key]
    assert stat.S_IMODE(target.stat().st_mode) == mode
    # as the files' owner (not root), reading a file of mode 0 raises PermissionError: as root, pretend it does
    real_hash, refused = manifest.file_hash, []

    def unreadable_once(path):
        if path == target and not refused:
            refused.append(path)
            raise PermissionError(13, "Permission denied", str(path))
        return real_hash(path)

    monkeypatch.setattr(manifest, "file_hash", unreadable_once)
    target.chmod(0)
    assert manifest.restore_changed(fresh_course, expected, contents) == [key]  # the batch's call: no stats
    assert refused and stat.S_IMODE(target.stat().st_mode) & stat.S_IRUSR


def test_a_submission_cannot_change_the_next_grade_through_the_worker_parent_they_share(pytester, built_course,
                                                                                      monkeypatch):
    """One job grades its submissions in turn with one warm worker parent: a submission that attacks it (and the
    models, inputs and torch state it holds, and the log) leaves the next submission's grade as it is alone."""
    from checks.isolation import supervisor

    started = []
    real_start = supervisor.start_zygote
    monkeypatch.setattr(supervisor, "start_zygote", lambda *args, **kwargs: started.append(1) or real_start(*args,
                                                                                                        **kwargs))
    submissions = [_write(pytester.path, "tamperer", built_course, TAMPERER),
                   _write(pytester.path, "ana", built_course, None)]
    statuses, rows = _grade(pytester.path, built_course, submissions, jobs=1)
    _all_passed(statuses, "ana_day1")
    assert rows["ana_day1"]["passed"] == "7" and "restored" not in rows["ana_day1"]["note"]
    report = json.loads((pytester.path / "grades" / "ana_day1.json").read_text())
    log = (pytester.path / "grades" / "ana_day1.log").read_text()
    assert "count_repeats: passed" in log and "z" * 100 not in log
    # which isolation features held is in the report; where the worker runs in a PID namespace the tamperer could
    # not even see its warm parent, which graded the next submission too (one start for the batch)
    sandbox = report["sandbox"]
    assert {"non_dumpable", "pid_namespace", "seccomp", "landlock", "landlock_abi"} <= set(sandbox)
    assert all(type(value) in (bool, int) for value in sandbox.values())
    if sandbox["pid_namespace"] and sandbox["own_proc"]:
        assert len(started) == 1


TAMPER_MODES = f"""
import os
def count_repeats(tokens):
    for path in PATHS:  # the course's references and zoo: mode 0, so that restoring them fails for their owner
        try:
            fd = os.open(path, os.O_RDONLY)
            os.fchmod(fd, 0)
        except OSError:
            pass
    return {RIGHT}
"""

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# Where the interpreter lies under root's home (mode 0700, as with pyenv in CI), uid 65534 cannot run it. As root,
# the test then runs in a mount namespace of its own in which /root is a 0711 tmpfs holding bind mounts of every
# entry of the real /root: the same files, only the home's own mode differs, and nothing changes outside.
ROOT_HOME_VIEW = """set -e
view="$1"; shift
mount --make-rprivate /
mount --bind /root "$view"
mount -t tmpfs -o mode=0711 tmpfs /root
for entry in "$view"/.[!.]* "$view"/*; do
  [ -e "$entry" ] || continue
  name=$(basename "$entry")
  if [ -d "$entry" ]; then mkdir "/root/$name"; else touch "/root/$name"; fi
  mount --bind "$entry" "/root/$name"
done
exec "$@"
"""


def _as_nobody(view: Path) -> list[str] | None:
    """A command prefix that runs as uid 65534 with this interpreter, torch and the course readable; None if none
    works here."""
    import shutil

    probe = [sys.executable, "-c", "import torch, checks"]
    if subprocess.run(NOBODY + probe, cwd="/", capture_output=True).returncode == 0:
        return NOBODY
    if shutil.which("unshare") is None:
        return None
    view.mkdir(mode=0o711)
    prefix = ["unshare", "--mount", "sh", "-c", ROOT_HOME_VIEW, "sh", str(view), *NOBODY]
    return prefix if subprocess.run(prefix + probe, cwd="/", capture_output=True).returncode == 0 else None


def test_a_mixed_batch_graded_by_a_normal_user_grades_every_honest_one_truly(tmp_path_factory):
    """As an instructor who owns the course's files (not root, unlike CI): an honest submission, a thief and one
    that re-permissions the references and the zoo, graded side by side, give true grades, and restoring the
    course never raises (exit 0 or 1, every report and summary.csv written)."""
    import shutil
    import tempfile

    from checks.store.manifest import manifest_files
    from support import make_fixture_course

    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="course-as-a-user-"))
    try:
        base.chmod(0o755)
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root, and setpriv (util-linux) is missing to become an unprivileged user")
            found = _as_nobody(base / "root-home")
            if found is None:
                pytest.skip(f"uid 65534 cannot run this interpreter with torch and the course ({sys.executable}: "
                            "its files are not readable by other users, and no mount namespace could show them)")
            prefix = found
        course = make_fixture_course(base)
        folder = base / "submissions"
        folder.mkdir()
        targets = [str(path) for path in manifest_files(course)]
        submissions = [_write(folder, "ana", course, None), _write(folder, "thief", course, THIEF),
                       _write(folder, "tamperer", course, TAMPER_MODES.replace("PATHS", repr(targets))),
                       _write(folder, "bea", course, None)]
        if prefix:
            subprocess.run(["chown", "-R", "65534:65534", str(base)], check=True)
        out = base / "grades"
        result = subprocess.run(prefix + [sys.executable, "-m", "checks", "grade", "--day", "1", "--root",
                                          str(course.root), "--models", course.model_loader, "--out", str(out),
                                          "--device", "cpu", "--jobs", "2", *map(str, submissions)],
                                cwd=base, capture_output=True, text=True, timeout=900,
                                env={**os.environ, "HOME": str(base), "HF_HUB_OFFLINE": "1"})
        assert result.returncode in (0, 1), result.stderr[-3000:]
        rows = {row["submission"]: row for row in csv.DictReader(open(out / "summary.csv"))}
        statuses = {path.stem: {entry["exercise"]: entry["status"] for entry in
                                json.loads((out / f"{path.stem}.json").read_text())["exercises"]}
                    for path in submissions}
        for honest in ("ana_day1", "bea_day1"):
            assert statuses[honest] == dict.fromkeys(EXERCISES, "passed"), honest
            assert rows[honest]["passed"] == "7"
        assert statuses["thief_day1"]["count_repeats"] == "failed"
        assert all(os.access(path, os.R_OK) for path in targets)  # every file readable again, as it was
    finally:
        shutil.rmtree(base, ignore_errors=True)
