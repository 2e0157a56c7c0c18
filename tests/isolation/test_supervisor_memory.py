"""The supervisor's memory stays under twice its control run whatever a submission sends back: each run grades one
exercise in a fresh supervisor process and reports that process's peak resident memory (its own, not its workers')."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from curriculum.tools.paths import COURSE_ROOT

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SUPERVISE = """
import json, resource, sys
from pathlib import Path
from checks.course import Course
from checks.isolation.limits import Limits
from checks.isolation.supervisor import Supervisor
course = Course(Path(sys.argv[1]), sys.argv[2])
day = course.day(1)
supervisor = Supervisor(course, [day], "cpu", limits=Limits(import_s=20, audit_s=20, memory_bytes=2 * 2**30))
try:
    outcome = supervisor.grade_file(day, day.check("distinct_tokens"), Path(sys.argv[3]))
finally:
    supervisor.close()
print(json.dumps({"status": outcome.status.value, "message": outcome.message[:300],
                  "length": len(outcome.message), "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

HOSTILE = {  # the frame first: it is the one that costs a supervisor without bounds the most
    "a frame that announces 900 MB and sends them": """
        import gc, os
        def distinct_tokens(tokens):
            channel = next(o for o in gc.get_objects() if type(o).__name__ == "Channel")
            os.write(channel.fd, (900 * 2**20).to_bytes(8, "big"))
            block = bytes(2**20)
            for _ in range(900):
                os.write(channel.fd, block)
            return []""",
    "a 100 MB exception message": """
        def distinct_tokens(tokens):
            raise ValueError("x" * 100_000_000)""",
    "a header of millions of empty lists": """
        import gc, os, struct
        def distinct_tokens(tokens):
            channel = next(o for o in gc.get_objects() if type(o).__name__ == "Channel")
            header = b'{"$dict":[["kind","result"],["case","seed"],["output",[' + b"[]," * 2_700_000 + b'[]]]]}'
            body = struct.pack(">I", len(header)) + header
            os.write(channel.fd, len(body).to_bytes(8, "big"))
            view = memoryview(body)
            while view:
                view = view[os.write(channel.fd, view):]
            return []""",
}


def _start(course, learner: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SUPERVISE, str(course.root), course.model_loader, str(learner)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=COURSE_ROOT)


def _result(run: subprocess.Popen) -> dict:
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


def test_the_supervisor_stays_under_twice_its_control_run(tmp_path, built_course):
    """The runs are separate processes, started together (each peak is its own process's, whatever runs beside it)."""
    solution = built_course.days[1].solution_path.read_text()
    honest = tmp_path / "honest_day1.py"
    honest.write_text(solution)
    runs = {None: _start(built_course, honest)}
    for number, (name, code) in enumerate(HOSTILE.items()):
        learner = tmp_path / f"hostile{number}" / "hostile_day1.py"
        learner.parent.mkdir()
        learner.write_text(solution + "\n\n" + textwrap.dedent(code) + "\n")
        runs[name] = _start(built_course, learner)
    results = {name: _result(run) for name, run in runs.items()}
    control = results.pop(None)
    assert control["status"] == "passed", control
    for name, graded in results.items():
        print(f"{name}: peak {graded['peak_kib'] / 1024:.0f} MiB (control {control['peak_kib'] / 1024:.0f} MiB)")
        assert graded["peak_kib"] < 2 * control["peak_kib"], (name, graded["peak_kib"], control["peak_kib"])
        assert graded["status"] == "failed", (name, graded)
        assert graded["length"] < 50_000, name
