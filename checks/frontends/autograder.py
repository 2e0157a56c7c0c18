"""Autograders for the platforms courses already grade on: Gradescope and PrairieLearn's external grader.

    python -m checks autograder --day 1 --platform gradescope --out DIR     build (see `build_autograder`)
    python -m checks.frontends.autograder gradescope --day 1     grade one submission (run_autograder)
    python -m checks.frontends.autograder prairielearn --day 1   grade one submission (run_grader)

Both platforms run one fresh container per submission. The container holds the course installed from a wheel built
from this course (so the references, the manifest and the zoo are the ones the instructor built), and grades with the
same path as `python -m checks grade`: `checks.frontends.batch.grade_submissions`, a supervisor process that verifies
the manifest and judges, workers that run the learner's code under the seccomp filter and limits, reads of the solutions
and stored references forbidden. This module only finds the submitted file and turns the report into the platform's
results.json:
- Gradescope (`$AUTOGRADER_ROOT`, default /autograder): reads `submission/`, writes `results/results.json` with
  `score`, `output` and one test per exercise (`name`, `score`, `max_score` 1, `status`, `output`: the diagnosis and
  the hint tiers the autograder was built with, `visibility`).
- PrairieLearn (`$GRADE_ROOT`, default /grade): reads `student/`, writes `results/results.json` with `gradable`,
  `score` in 0..1, `message`, `output` and one test per exercise (`name`, `points`, `max_points` 1, `message`,
  `output`). A submission with no file to grade, several candidates, or a syntax error is `gradable: false` (the
  learner loses no attempt), as PrairieLearn's documentation recommends.
Whatever the learner's code does (hangs, exits, crashes, writes files), the results file is written by the grading
process after every worker is gone, and every exercise of the day is counted.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks.course import Course, CourseError, Day
from checks.isolation.limits import Limits
from checks.pipeline.outcome import Status

PLATFORMS = ("gradescope", "prairielearn")
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
# under the platforms' own job limits (PrairieLearn: at most 600 s), so that a slow submission still gets its results
DEFAULT_TIMEOUT_S = {"gradescope": 540.0, "prairielearn": 540.0}
_OUTPUT_LIMIT = 20_000  # characters of the learner's printed output kept in a results file (PrairieLearn: 1 MB)
_SKIPPED_PARTS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__"}


class SubmissionError(Exception):
    """The submission folder holds no file to grade, or several that could be the day's."""


# ---- building an autograder ------------------------------------------------------------------------------------------
def torch_version() -> str:
    """The version of the torch installed here (the one this course was tested with), without its local tag."""
    return importlib.metadata.version("torch").split("+")[0]


def build_wheel(root: Path, out: Path) -> Path:
    """A wheel of the course at `root` without its solutions, written into `out` (replacing an older one there).

    Built offline from this environment's setuptools (`--no-build-isolation`), so it needs `wheel` or
    setuptools >= 70.1 installed (the `test` extra installs `wheel`)."""
    for old in out.glob("mechinterp_course-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="course-wheel-") as scratch:
        source = Path(scratch) / "src"  # a clean copy: the build writes build/ and egg-info beside its sources
        shutil.copytree(root, source, ignore=shutil.ignore_patterns(
            ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "out", "tests", "bench"))
        # a grading image needs no solution: the generated curriculum modules stand in for them (`checks.course`),
        # so code that escapes the sandbox finds no answer to read
        for solution in [*(source / "solutions").glob("day*_*.py"), *(source / "notebooks").glob("instructor/*")]:
            solution.unlink()
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                                 "-w", str(out), str(source)], capture_output=True, text=True)
    wheels = sorted(out.glob("mechinterp_course-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise CourseError(f"building the course's wheel failed (pip exit {result.returncode}): "
                          f"{(result.stderr or result.stdout).strip()[-2000:]}\n(with --no-build-isolation, pip needs "
                          "`wheel` or setuptools >= 70.1: `pip install wheel`)")
    return wheels[0]


@dataclass(frozen=True)
class AutograderSettings:
    """What an autograder is built with: the day, the hint tiers shown with a failure (0: none, 1: the nudge, 2: and
    the approach, 3: and the recipe), Gradescope's visibility of each test, and the limit for one submission."""

    day: int
    platform: str
    hints: int = 1
    visibility: str = "visible"
    timeout_s: float = 0.0  # 0: the platform's default (DEFAULT_TIMEOUT_S)
    memory_gb: float = 4.0

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValueError(f"unknown platform {self.platform!r}: choose one of {', '.join(PLATFORMS)}")
        if self.visibility not in VISIBILITIES:
            raise ValueError(f"unknown visibility {self.visibility!r}: choose one of {', '.join(VISIBILITIES)}")
        if not 0 <= self.hints <= 3:
            raise ValueError(f"hints is a number of tiers, 0 to 3, got {self.hints}")
        if not self.timeout_s:
            object.__setattr__(self, "timeout_s", DEFAULT_TIMEOUT_S[self.platform])

    def grade_arguments(self) -> list[str]:
        """The arguments of `python -m checks.frontends.autograder` that grade with these settings."""
        arguments = [self.platform, "--day", str(self.day), "--hints", str(self.hints), "--timeout",
                     f"{self.timeout_s:g}", "--memory-gb", f"{self.memory_gb:g}"]
        if self.platform == "gradescope":
            arguments += ["--visibility", self.visibility]
        return arguments


def build_autograder(settings: AutograderSettings, out: Path, course: Course | None = None) -> list[Path]:
    """Write the autograder of `settings.day` for `settings.platform` into `out`; returns the files written.

    gradescope: the course's wheel, `setup.sh` (installs the pinned CPU torch and the wheel into /autograder/venv),
    `run_autograder`, and `autograder.zip` of the three (what Gradescope's "Configure autograder" page takes).
    prairielearn: the wheel, an executable `run_grader`, the grading image's `Dockerfile`, and `info.json` with the
    question's `externalGradingOptions`. Each folder has a README.md saying what to upload where."""
    course = course or Course.default()
    day = course.day(settings.day)  # CourseError for an unknown day, before anything is written
    out.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(course.root, out)
    command = shlex.join(settings.grade_arguments())
    torch_pin = f"torch=={torch_version()}"
    written = [wheel]
    if settings.platform == "gradescope":
        setup = out / "setup.sh"
        setup.write_text(_GRADESCOPE_SETUP.format(torch=torch_pin, wheel=wheel.name))
        runner = out / "run_autograder"
        runner.write_text(_GRADESCOPE_RUN.format(command=command))
        readme = out / "README.md"
        readme.write_text(_GRADESCOPE_README.format(day=day.number, module=day.module, hints=settings.hints,
                                                   timeout=settings.timeout_s, wheel=wheel.name))
        for path in (setup, runner):
            path.chmod(0o755)
        archive = out / "autograder.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in (setup, runner, wheel):  # at the root of the archive, as Gradescope requires
                info = zipfile.ZipInfo(path.name, date_time=(2026, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if path.suffix != ".whl" else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                bundle.writestr(info, path.read_bytes())
        written += [setup, runner, archive, readme]
    else:
        runner = out / "run_grader"
        runner.write_text(_PRAIRIELEARN_RUN.format(command=command))
        runner.chmod(0o755)
        dockerfile = out / "Dockerfile"
        dockerfile.write_text(_PRAIRIELEARN_DOCKERFILE.format(torch=torch_pin, wheel=wheel.name))
        info = out / "info.json"
        timeout = min(600, int(settings.timeout_s) + 60)
        info.write_text(json.dumps({"externalGradingOptions": {
            "enabled": True, "image": "YOUR-REGISTRY/mechinterp-course-grader:day" + str(day.number),
            "entrypoint": "/opt/course/run_grader", "timeout": timeout}}, indent=2) + "\n")
        readme = out / "README.md"
        readme.write_text(_PRAIRIELEARN_README.format(day=day.number, module=day.module, hints=settings.hints,
                                                     timeout=settings.timeout_s, job_timeout=timeout))
        written += [runner, dockerfile, info, readme]
    return written


_GRADESCOPE_SETUP = """\
#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (with network access).
# It installs the pinned CPU build of torch (a bare `torch` would pull several GB of CUDA packages) and the course
# from the wheel beside this script, into /autograder/venv.
set -euo pipefail
cd "$(dirname "$0")"
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends python3 python3-venv python3-pip
fi
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --no-cache-dir {torch} --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/python -m pip install --no-cache-dir ./{wheel}
/autograder/venv/bin/python -m pip check
"""

_GRADESCOPE_RUN = """\
#!/usr/bin/env bash
# Gradescope runs this for every submission: it grades the .py or .ipynb in $AUTOGRADER_ROOT/submission (default
# /autograder) in isolated workers and writes $AUTOGRADER_ROOT/results/results.json. Offline: no hub, no network.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "${{COURSE_PYTHON:-/autograder/venv/bin/python}}" -m checks.frontends.autograder {command} "$@"
"""

_PRAIRIELEARN_RUN = """\
#!/usr/bin/env bash
# PrairieLearn's entrypoint: grades the .py or .ipynb in $GRADE_ROOT/student (default /grade) in isolated workers and
# writes $GRADE_ROOT/results/results.json. Offline: no hub, no network.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "${{COURSE_PYTHON:-/opt/course/venv/bin/python}}" -m checks.frontends.autograder {command} "$@"
"""

_PRAIRIELEARN_DOCKERFILE = """\
# The grading image of PrairieLearn's external grader: the course installed from its wheel, and run_grader as the
# entrypoint. Build and push it where your PrairieLearn can pull it:
#   docker build -t REGISTRY/mechinterp-course-grader:dayN . && docker push REGISTRY/mechinterp-course-grader:dayN
FROM python:3.11-slim-bookworm
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY {wheel} /opt/course/
RUN python3 -m venv /opt/course/venv \\
    && /opt/course/venv/bin/python -m pip install --no-cache-dir {torch} \\
        --index-url https://download.pytorch.org/whl/cpu \\
    && /opt/course/venv/bin/python -m pip install --no-cache-dir /opt/course/{wheel} \\
    && /opt/course/venv/bin/python -m pip check
COPY run_grader /opt/course/run_grader
RUN chmod 755 /opt/course/run_grader
ENTRYPOINT ["/opt/course/run_grader"]
"""

_GRADESCOPE_README = """\
# Gradescope autograder of day {day} ({module})

Upload `autograder.zip` on the assignment's "Configure Autograder" page (base image: Ubuntu with Python 3.10 or
newer; give it at least 2 GB of memory). `setup.sh` installs the CPU build of torch and the course from `{wheel}`;
`run_autograder` grades the `.py` or `.ipynb` a learner submits, one test per exercise (1 point each), showing the
diagnosis of each failure and {hints} hint tier(s). A submission is stopped after {timeout:g} s (every exercise then
counted as failed, saying so): keep the assignment's autograder timeout above that. What the learner's code printed
goes to the autograder's stdout (instructors only).

Try it locally (Linux): `AUTOGRADER_ROOT=/tmp/ag COURSE_PYTHON=$(which python) ./run_autograder` with the file in
`/tmp/ag/submission/`, in an environment where the course is installed.
"""

_PRAIRIELEARN_README = """\
# PrairieLearn external grader of day {day} ({module})

1. Build the grading image from this folder and push it where PrairieLearn pulls images:
   `docker build -t YOUR-REGISTRY/mechinterp-course-grader:day{day} . && docker push ...`
2. In the question's `info.json`, add `externalGradingOptions` from `info.json` here (image name, entrypoint
   `/opt/course/run_grader`, a {job_timeout} s job timeout; networking stays off, the default).
3. Let learners upload their file with `<pl-file-upload file-names="{module}.py">` (or `.ipynb`).

`run_grader` grades `/grade/student`, one test per exercise (1 point each, score = the fraction passed), showing the
diagnosis of each failure and {hints} hint tier(s); a submission is stopped after {timeout:g} s. A submission with no
file to grade, several candidates or a syntax error is `gradable: false`: the learner loses no attempt.
"""


# ---- grading one submission ------------------------------------------------------------------------------------------
def find_submission(folder: Path, day: Day) -> Path:
    """The file to grade for `day` among the .py and .ipynb files under `folder`: the one there is; else the day's
    module (`dayN_<topic>.py`, then `.ipynb`); else the one `dayN_*` file. Raises SubmissionError otherwise."""
    if not folder.is_dir():
        raise SubmissionError(f"there is no submission folder {folder}")
    candidates = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix in (".py", ".ipynb")
                        and not any(part in _SKIPPED_PARTS or part.startswith(".")
                                    for part in path.relative_to(folder).parts))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        found = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
        raise SubmissionError(f"no .py or .ipynb file was submitted (found: {', '.join(found) or 'nothing'}); submit "
                              f"your {day.module}.py or {day.module}.ipynb")
    for name in (f"{day.module}.py", f"{day.module}.ipynb"):
        named = [path for path in candidates if path.name == name]
        if len(named) == 1:
            return named[0]
    of_day = [path for path in candidates if path.name.startswith(f"day{day.number}_")]
    if len({path.stem for path in of_day}) == 1:
        return sorted(of_day, key=lambda path: path.suffix != ".py")[0]  # a jupytext pair: the module
    listed = ", ".join(str(path.relative_to(folder)) for path in candidates)
    raise SubmissionError(f"several files were submitted ({listed}) and none is {day.module}.py or .ipynb: submit one")


def syntax_error(path: Path) -> str | None:
    """Why the learner's file cannot be compiled, or None. Parsing only: no learner code runs here."""
    from checks.pipeline.learner import LearnerModuleError, read_source

    try:
        source = read_source(path)
        ast.parse(source, filename=str(path))
    except LearnerModuleError as error:
        return str(error)
    except SyntaxError as error:
        return f"{path.name}: syntax error at line {error.lineno}: {error.msg}"
    except (UnicodeDecodeError, ValueError) as error:
        return f"{path.name} cannot be read as Python: {error}"
    return None


@dataclass
class Graded:
    """One graded submission: the file, the report of `grade_submissions`, what its code printed, how long it took."""

    path: Path
    report: dict[str, Any]
    note: str = ""
    log: str = ""
    seconds: float = 0.0
    exercises: list[dict[str, Any]] = field(default_factory=list)


def grade_file(path: Path, day: Day, course: Course, limits: Limits) -> Graded:
    """Grade `path` on `day` the way `python -m checks grade` does (a supervisor process, isolated workers, reads of
    the solutions forbidden, the manifest verified first). Raises CourseError when the course itself is broken."""
    from checks.frontends.batch import grade_submissions

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="course-autograder-") as scratch:
        (score,) = grade_submissions([path], str(day.number), Path(scratch), course=course, jobs=1, limits=limits,
                                     progress=False)
        name = Path(scratch) / path.stem
        report = json.loads(name.with_suffix(".json").read_text())
        log_path = name.with_suffix(".log")
        log = log_path.read_text(errors="replace") if log_path.is_file() else ""
    exercises = [entry for entry in report["exercises"] if entry["day"] == day.number]
    return Graded(path, report, score.note, log, round(time.monotonic() - start, 1), exercises)


def feedback(entry: dict[str, Any], check_hints: tuple[str, ...], hints: int) -> str:
    """What a learner reads for one exercise: the diagnosis and, for a failure, the first `hints` hint tiers."""
    status = Status(entry["status"])
    if status is Status.PASSED:
        return "passed"
    text = entry["message"] or str(status)  # a failure's diagnosis names its input case
    if status.is_course_problem:
        return f"{text}\nThis is a problem of the course, not of your code: tell your instructor."
    names = ("Hint", "Approach", "Recipe")
    if status is Status.FAILED:
        for name, hint in zip(names, check_hints[:hints]):
            text += f"\n{name}: {hint}"
    return text


def _truncated(text: str, limit: int = _OUTPUT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more characters not shown)"


def gradescope_results(graded: Graded, day: Day, settings: AutograderSettings) -> dict[str, Any]:
    """Gradescope's results.json for a graded submission: one test of 1 point per exercise."""
    tests = []
    for number, entry in enumerate(graded.exercises, start=1):
        passed = entry["status"] == Status.PASSED.value
        tests.append({"name": entry["exercise"], "number": f"{day.number}.{number}",
                      "score": 1.0 if passed else 0.0, "max_score": 1.0, "status": "passed" if passed else "failed",
                      "output": feedback(entry, day.check(entry["exercise"]).hints, settings.hints),
                      "visibility": settings.visibility})
    score = sum(test["score"] for test in tests)
    summary = [f"Day {day.number} ({day.module}): {score:g}/{len(tests)} exercises passed, graded "
               f"{graded.path.name} in {graded.seconds:g} s."]
    if graded.note:
        summary.append(graded.note)
    return {"score": score, "execution_time": graded.seconds, "output": "\n".join(summary),
            "visibility": settings.visibility, "stdout_visibility": "hidden", "tests": tests}


def prairielearn_results(graded: Graded, day: Day, settings: AutograderSettings) -> dict[str, Any]:
    """PrairieLearn's results.json for a graded submission: score = the fraction of exercises passed."""
    tests = []
    for entry in graded.exercises:
        passed = entry["status"] == Status.PASSED.value
        failed_case = entry.get("case") if entry["status"] == Status.FAILED.value else ""
        message = "passed" if passed else (f"failed (case {failed_case})" if failed_case else entry["status"])
        tests.append({"name": entry["exercise"], "points": 1 if passed else 0, "max_points": 1, "message": message,
                      "output": feedback(entry, day.check(entry["exercise"]).hints, settings.hints)})
    passed = sum(test["points"] for test in tests)
    message = (f"Day {day.number} ({day.module}): {passed}/{len(tests)} exercises passed, graded {graded.path.name} in "
               f"{graded.seconds:g} s." + (f" {graded.note}" if graded.note else ""))
    return {"gradable": True, "score": passed / len(tests) if tests else 0.0, "message": message,
            "output": _truncated(graded.log), "tests": tests}


def not_gradable(platform: str, day: Day | None, why: str) -> dict[str, Any]:
    """The results.json of a submission that could not be graded at all (`why`)."""
    if platform == "prairielearn":
        return {"gradable": False, "score": 0.0, "message": why, "format_errors": [why], "tests": []}
    tests = [{"name": check.name, "number": f"{day.number}.{number}", "score": 0.0,
              "max_score": 1.0, "status": "failed", "output": why}
             for number, check in enumerate(day.checks, start=1)] if day is not None else []
    return {"score": 0.0, "output": f"Not graded: {why}", "stdout_visibility": "hidden", "tests": tests}


def run(settings: AutograderSettings, root: Path, course: Course | None = None) -> dict[str, Any]:
    """Grade the submission under the platform's `root` and write its results.json there; returns the results."""
    course = course or Course.default()
    results_dir = root / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    results_path = results_dir / "results.json"
    folder = root / ("submission" if settings.platform == "gradescope" else "student")
    day: Day | None = None
    try:
        day = course.day(settings.day)
        path = find_submission(folder, day)
        problem = syntax_error(path)
        if problem is not None and settings.platform == "prairielearn":
            results = not_gradable(settings.platform, day, problem)
        else:  # Gradescope has no "not gradable": every exercise fails, saying why
            limits = Limits(submission_s=settings.timeout_s, memory_bytes=int(settings.memory_gb * 1024**3))
            graded = grade_file(path, day, course, limits)
            print(_truncated(graded.log) or "(the submission printed nothing)")
            convert = gradescope_results if settings.platform == "gradescope" else prairielearn_results
            results = convert(graded, day, settings)
    except SubmissionError as error:
        results = not_gradable(settings.platform, day, str(error))
    except CourseError as error:  # not the learner's fault: say so, and let the instructor regrade
        results = not_gradable(settings.platform, day, f"the course's grader is broken, not your submission; your "
                                                        f"instructor has to fix it and regrade: {error}")
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m checks.frontends.autograder",
                                     description="Grade one submission on Gradescope or PrairieLearn (the command "
                                                 "run_autograder and run_grader call).")
    parser.add_argument("platform", choices=PLATFORMS)
    parser.add_argument("--day", type=int, required=True)
    parser.add_argument("--hints", type=int, default=1, choices=range(4), help="hint tiers shown with a failure")
    parser.add_argument("--visibility", choices=VISIBILITIES, default="visible", help="Gradescope's test visibility")
    parser.add_argument("--timeout", type=float, default=0.0, help="seconds allowed for the submission")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="memory per worker beyond the warm parent")
    parser.add_argument("--root", type=Path, help="course folder (default: the installed course)")
    parser.add_argument("--models", help="zoo loader as 'module:function' or 'file.py:function'")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    settings = AutograderSettings(args.day, args.platform, args.hints, args.visibility, args.timeout, args.memory_gb)
    course = Course.default()
    if args.root or args.models:
        course = Course((args.root or course.root).resolve(), args.models or course.model_loader)
    variable, default = (("AUTOGRADER_ROOT", "/autograder") if args.platform == "gradescope"
                         else ("GRADE_ROOT", "/grade"))
    root = Path(os.environ.get(variable) or default)
    results = run(settings, root, course)
    print(f"wrote {root / 'results' / 'results.json'}: score {results.get('score')}"
          + ("" if results.get("gradable", True) else " (not gradable)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
