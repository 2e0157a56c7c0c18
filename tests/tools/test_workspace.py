"""The learner's loop: their workspace, which file `pytest --day N` grades, the notebook and the terminal agreeing on
the same code, "Run All" with stubs, clear errors for wrong files, the progress command, and a plugin that never
breaks an unrelated pytest run."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import jupytext
import nbformat
import pytest

from checks import grade
from checks.frontends.session import graded_file_report, learner_file
from curriculum.tools.workspace import WorkspaceError, learner_copies, start_day, workspace_dir
from curriculum.tools.paths import COURSE_ROOT as REPO_ROOT

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _run(pytester: pytest.Pytester, course, *args: str) -> tuple[pytest.RunResult, dict]:
    pytester.makeini(f"[pytest]\ncourse_root = {course.root}\ncourse_models = {course.model_loader}\n")
    report = pytester.path / "grades.json"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args, "--grade-json", str(report))
    return result, json.loads(report.read_text()) if report.exists() else {}


def _failure_reports(result: pytest.RunResult) -> str:
    """The terminal output before pytest's short summary, which repeats each message in full when `CI` is set."""
    return result.stdout.str().split("short test summary info")[0]


def _statuses(report: dict) -> dict[str, str]:
    return {entry["exercise"]: entry["status"] for entry in report["exercises"]}


def _started_course(course, workspace: Path, monkeypatch) -> tuple[Path, Path]:
    """The fixture course's day 1 started in `workspace` (its learner notebook built first): (notebook, module)."""
    from notebooks.builder import DayFiles, make_learner_notebook, write_notebook

    files = DayFiles(course.root, course.days[1].solution_path)
    write_notebook(make_learner_notebook(files.curriculum.read_text(), files.solution.name), files.learner_notebook)
    monkeypatch.setenv("MECHINTERP_WORKSPACE", str(workspace))
    notebook, module = start_day(1, root=course.root)
    return notebook, module


def _fill(path: Path, name: str, body: str) -> None:
    """Replace the stub of exercise `name` in a learner's .py or .ipynb with `body` (indented code), as an editor
    or JupyterLab would save it."""
    stub = f'raise NotImplementedError("write {name}, then run check({name})")'
    if path.suffix == ".py":
        text = path.read_text()
        assert stub in text
        path.write_text(text.replace(stub, body.strip().replace("\n", "\n    ")))
        return
    notebook = nbformat.read(path, as_version=4)
    cell = next(cell for cell in notebook.cells if stub in cell.source)
    cell.source = cell.source.replace(stub, body.strip().replace("\n", "\n    "))
    nbformat.write(notebook, path)


# ---- the workspace ---------------------------------------------------------------------------------------------------
def test_start_copies_a_paired_notebook_and_module_and_never_overwrites(built_course, tmp_path, monkeypatch):
    workspace = tmp_path / "my work"
    notebook, module = _started_course(built_course, workspace, monkeypatch)
    assert (notebook, module) == (workspace / "day1_toy.ipynb", workspace / "day1_toy.py")
    assert workspace_dir() == workspace.resolve()
    assert jupytext.read(notebook).metadata["jupytext"]["formats"] == "ipynb,py:percent"
    assert "formats: ipynb,py:percent" in module.read_text()
    assert "course_generated" not in jupytext.read(notebook).metadata  # the copy is the learner's, not the builder's
    assert notebook.stat().st_mtime_ns <= module.stat().st_mtime_ns  # jupytext opens a pair whose .py is not older
    _fill(module, "count_repeats", "return 0")
    before = module.read_text()
    with pytest.raises(WorkspaceError, match="already started.*never overwrites"):
        start_day(1, root=built_course.root)
    assert module.read_text() == before
    with pytest.raises(WorkspaceError, match="there is no day 9"):
        start_day(9, root=built_course.root)


def test_grading_takes_the_workspace_copy_else_the_stub_and_says_which(built_course, tmp_path, monkeypatch):
    day = built_course.days[1]
    monkeypatch.setenv("MECHINTERP_WORKSPACE", str(tmp_path / "empty"))
    assert learner_file(day) == day.curriculum_path
    assert "the course's pristine stub" in graded_file_report(day)[0]
    notebook, module = _started_course(built_course, tmp_path / "ws", monkeypatch)
    _fill(notebook, "count_repeats", "return int((tokens[:, 1:] == tokens[:, :-1]).sum())")
    time.sleep(0.01)
    os.utime(notebook)  # the notebook was saved last
    assert learner_copies(day.module) == [notebook, module]
    assert learner_file(day) == notebook
    lines = graded_file_report(day)
    assert lines[0] == f"day 1: grading your copy {notebook}"
    assert "warning" not in "\n".join(lines)
    _fill(module, "describe_shape", 'return f"batch={tokens.shape[0]}, pos={tokens.shape[1]}"')
    assert learner_file(day) == module
    warning = graded_file_report(day)[1]
    assert "day1_toy.ipynb (older) holds work on count_repeats that day1_toy.py lacks" in warning


def test_pytest_day_grades_the_workspace_copy_and_prints_it(pytester, built_course, tmp_path, monkeypatch):
    notebook, module = _started_course(built_course, tmp_path / "ws", monkeypatch)
    _fill(module, "count_repeats", "return int((tokens[:, 1:] == tokens[:, :-1]).sum())")
    result, report = _run(pytester, built_course, "--day", "1")
    assert _statuses(report)["count_repeats"] == "passed"
    assert list(_statuses(report).values()).count("not started") == 6
    assert report["days"]["1"]["source"] == str(module)
    result.stdout.fnmatch_lines([f"day 1: grading your copy {module}", "*day 1: 1/7 passed, 6 not started"])


def test_pytest_day_inside_the_checkout_grades_the_workspace_and_tests_leave_no_temporary_files(
        built_course, tmp_path, monkeypatch):
    """From the course's own folder, pytest loads tests/conftest.py even for `--day`: it must not replace the
    learner's workspace. Neither a grading run nor a run of the project's tests leaves anything in the temporary
    folder besides pytest's own (pytest-of-<user>, which pytest prunes)."""
    workspace = tmp_path / "ws"
    notebook, module = _started_course(built_course, workspace, monkeypatch)
    _fill(module, "count_repeats", "return int((tokens[:, 1:] == tokens[:, :-1]).sum())")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly"]
    grading = [*command, "--day", "1", "-k", "count_repeats", "-o", f"course_root={built_course.root}",
               "-o", f"course_models={built_course.model_loader}"]
    testing = [*command, "-q", "tests/grader/test_compare.py::test_tolerance_is_atol_plus_rtol_times_expected"]
    scratches = [tmp_path / "tmp-grading", tmp_path / "tmp-tests"]  # one temporary folder each: they run together
    runs = []
    for scratch, arguments in zip(scratches, [grading, testing]):
        scratch.mkdir()
        env = {**os.environ, "TMPDIR": str(scratch), "MECHINTERP_WORKSPACE": str(workspace)}
        runs.append(subprocess.Popen(arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=REPO_ROOT, env=env))
    (graded_out, graded_err), (tests_out, tests_err) = (run.communicate(timeout=600) for run in runs)
    assert f"day 1: grading your copy {module}" in graded_out, graded_out + graded_err
    assert runs[0].returncode == 0 and "1 passed" in graded_out, graded_out + graded_err
    assert sorted(path.name for path in scratches[0].iterdir()) == []
    assert runs[1].returncode == 0, tests_out + tests_err
    left = sorted(path.name for path in scratches[1].iterdir())
    assert all(name.startswith("pytest-of-") for name in left), left


# ---- notebook and terminal agree -------------------------------------------------------------------------------------
AGREEING_LEARNER = '''
# %%
import math

import torch

MAIN = __name__ == "__main__"
NEG_INF = float("-inf")            # a module-level constant that calls something
SQRT = {d: math.sqrt(d) for d in range(1, 65)}
SEPARATOR = ", ".join(["", ""])    # ", " built by a call


def _future_mask(size):            # a helper used by an exercise
    return torch.triu(torch.ones(size, size, dtype=torch.bool), diagonal=1)


# %%
def attention_pattern(model, tokens):
    _, cache = model.run_with_cache(tokens)
    q, k = cache["q", 0], cache["k", 0]
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / SQRT[q.shape[-1]]
    return scores.masked_fill(_future_mask(tokens.shape[1]), NEG_INF).softmax(-1)


def describe_shape(tokens):
    return f"batch={tokens.shape[0]}{SEPARATOR}pos={tokens.shape[1]}"


def count_repeats(tokens):
    return int((tokens[:, 1:] == tokens[:, :-1]).sum()) + OFFSET   # wrong: OFFSET is 1


def distinct_tokens(tokens):
    raise NotImplementedError("write distinct_tokens, then run check(distinct_tokens)")


OFFSET = len(SEPARATOR) - 1

# %%
if MAIN:
    window = 3                        # exploration: defines a name an exercise then uses


def slow_sum(tokens):
    return int(tokens[:, :window].sum())   # passes in the notebook only if window covers the sequence
'''


def _notebook_verdicts(source: str, course) -> dict[str, str]:
    """What `check` says on each exercise after the learner ran every cell of their notebook (as a kernel does)."""
    namespace: dict = {"__name__": "__main__"}
    exec(compile(source, "<notebook>", "exec"), namespace)
    names = ["attention_pattern", "describe_shape", "count_repeats", "distinct_tokens"]
    return {name: grade(namespace[name], course=course, device="cpu").status for name in names}


@pytest.mark.parametrize("suffix", [".py", ".ipynb"])
def test_check_and_pytest_give_the_same_verdicts_on_the_same_code(pytester, built_course, suffix):
    in_notebook = _notebook_verdicts(AGREEING_LEARNER, built_course)
    assert in_notebook == {"attention_pattern": "passed", "describe_shape": "passed", "count_repeats": "failed",
                           "distinct_tokens": "not started"}
    path = pytester.path / f"learner_day1{suffix}"
    if suffix == ".py":
        path.write_text(AGREEING_LEARNER)
    else:
        jupytext.write(jupytext.reads(AGREEING_LEARNER, fmt="py:percent"), path)
    _, report = _run(pytester, built_course, "--day", "1", "--learner", str(path))
    in_terminal = _statuses(report)
    assert {name: in_terminal[name] for name in in_notebook} == in_notebook
    # a name defined only by exploration code: grading never runs it, and says so
    assert in_terminal["slow_sum"] == "failed"
    message = next(e["message"] for e in report["exercises"] if e["exercise"] == "slow_sum")
    assert "`window` is defined in your file only by exploration code" in message


def test_check_grades_with_autograd_on_like_pytest(built_course):
    import torch

    def count_repeats(tokens):
        assert torch.is_grad_enabled(), "graded with autograd off"
        return int((tokens[:, 1:] == tokens[:, :-1]).sum())

    with torch.no_grad():
        assert grade(count_repeats, course=built_course, device="cpu").status == "passed"


def test_importing_a_day_changes_no_global_state():
    code = ("import torch, solutions.day1_induction_heads, solutions.day4_array_indexing, "
            "curriculum.day1_induction_heads, curriculum.day4_array_indexing; print(torch.is_grad_enabled())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.stdout.strip() == "True", result.stderr


# ---- wrong files -----------------------------------------------------------------------------------------------------
def test_another_days_file_and_a_syntax_error_are_said_once(pytester, built_course):
    other_day = built_course.days[2].solution_path
    result, report = _run(pytester, built_course, "--day", "1", f"--learner={other_day}")
    assert set(_statuses(report).values()) == {"failed"}
    result.stdout.fnmatch_lines(["*looks like day 2's file*"])
    assert _failure_reports(result).count("looks like day 2's file") == 1
    broken = pytester.makepyfile(broken_day1="import torch\n\ndef count_repeats(tokens)\n    return 1\n")
    result, report = _run(pytester, built_course, "--day", "1", "--learner", str(broken))
    assert set(_statuses(report).values()) == {"failed"}
    assert _failure_reports(result).count("syntax error on line 3") == 1


# ---- Run All with stubs ----------------------------------------------------------------------------------------------
def test_run_all_goes_past_unwritten_exercises(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    from curriculum.tools import run_all
    from curriculum.tools.run_all import keep_going_past_stubs

    shell = InteractiveShell.instance()
    try:
        shell.run_cell("MAIN = True", store_history=False)
        assert keep_going_past_stubs() is None  # the notebook's cell calling it shows nothing
        assert any(type(t).__name__ == "_GuardExplorations" for t in shell.ast_transformers)
        cells = [
            'def induction_scores(x):\n    """Doc."""\n    raise NotImplementedError("write induction_scores, then run '
            'check(induction_scores)")',
            "if MAIN:\n    drawn = 'a figure that needs no exercise'\n    scores = induction_scores(1)\n"
            "    after = 'never reached'",
            "if MAIN:\n    print(scores)",
            "if MAIN:\n    print(drawn)",
            "if MAIN:\n    print({}['half filled'])",
        ]
        results = [shell.run_cell(cell, store_history=False) for cell in cells]
        assert all(result.success for result in results)
        printed = capsys.readouterr().out.splitlines()
        assert printed == [
            "[skipped the rest of this cell] it needs the exercise induction_scores, which you have not written yet: "
            "write it, then run check(induction_scores)",
            "[skipped the rest of this cell] it needs scores, which an earlier cell did not get to define: write "
            "induction_scores first",
            "a figure that needs no exercise",
            "[skipped the rest of this cell] KeyError: 'half filled', most likely because an earlier cell stopped at "
            "an unwritten exercise: write induction_scores first"]
        assert "after" not in shell.user_ns
        # the learner writes the exercise: from then on, an error in exploration code is theirs and is raised
        assert shell.run_cell("def induction_scores(x):\n    return x", store_history=False).success
        assert run_all._stopped == []
        assert not shell.run_cell("if MAIN:\n    1 / 0", store_history=False).success
    finally:
        shell.ast_transformers.clear()
        InteractiveShell.clear_instance()


def test_a_skipped_cell_names_the_exercises_it_needs_not_every_earlier_one(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    from curriculum.tools import run_all
    from curriculum.tools.run_all import keep_going_past_stubs

    shell = InteractiveShell.instance()
    try:
        shell.run_cell("MAIN = True", store_history=False)
        keep_going_past_stubs()
        for name in ("tokenize", "induction_scores"):
            shell.run_cell(f'def {name}(x):\n    raise NotImplementedError("write {name}, then run check({name})")',
                           store_history=False)
        cells = ["if MAIN:\n    tokens = tokenize(1)",
                 "if MAIN:\n    scores = induction_scores(2)",
                 "if MAIN:\n    top = sorted(scores)",           # needs scores: induction_scores only
                 "if MAIN:\n    print(top, tokens)"]             # needs top, left undefined by the cell above
        assert all(shell.run_cell(cell, store_history=False).success for cell in cells)
        printed = capsys.readouterr().out.splitlines()
        assert printed[2:] == [
            "[skipped the rest of this cell] it needs scores, which an earlier cell did not get to define: write "
            "induction_scores first",
            "[skipped the rest of this cell] it needs top, which an earlier cell did not get to define: write "
            "induction_scores first"]
    finally:
        shell.ast_transformers.clear()
        InteractiveShell.clear_instance()
        run_all._stopped.clear()
        run_all._left_undefined.clear()


# ---- a plugin that never breaks unrelated pytest runs ----------------------------------------------------------------
def _declared_entry_module() -> str:
    entry_points = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["pytest11"]
    (module,) = entry_points.values()
    return module


def test_the_entry_point_is_a_unique_module_that_imports_no_course_code():
    module = _declared_entry_module()
    assert module == "mechinterp_course_pytest" and (REPO_ROOT / f"{module}.py").is_file()
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('checks', 'curriculum', 'notebooks', "
            "'solutions', 'torch')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert result.stdout.strip() == "[]", result.stderr


def test_a_users_checks_module_and_device_option_do_not_break_their_pytest(tmp_path):
    """The user's project has its own checks.py, notebooks/, solutions/ and a conftest defining --device; pytest is
    run with exactly the plugin the project declares (autoload off, then the declared entry module)."""
    (tmp_path / "checks.py").write_text("VALUE = 1\n")
    for folder in ("notebooks", "solutions"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "conftest.py").write_text(
        "def pytest_addoption(parser):\n    parser.addoption('--device', default='cpu')\n")
    (tmp_path / "test_theirs.py").write_text(
        "import checks\n\ndef test_theirs(request):\n    assert checks.VALUE == 1\n"
        "    assert request.config.getoption('--device') == 'cpu'\n")
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", _declared_entry_module()]
    result = subprocess.run([*command, "test_theirs.py"], capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=120)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
    # with --day, the course's own packages are graded, not the user's same-named ones
    graded = subprocess.run([*command, "--day", "4", "--collect-only"], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=300)
    assert graded.returncode == 0 and "day4::" in graded.stdout, graded.stdout + graded.stderr


# ---- progress --------------------------------------------------------------------------------------------------------
def test_progress_shows_every_day_its_exercises_and_the_score(built_course, tmp_path, monkeypatch, capsys):
    from curriculum.tools.progress import format_progress, grade_progress, last_progress

    notebook, module = _started_course(built_course, tmp_path / "ws", monkeypatch)
    _fill(module, "count_repeats", "return int((tokens[:, 1:] == tokens[:, :-1]).sum())")
    _fill(module, "describe_shape", 'return "wrong"')
    report = grade_progress(course_root=built_course.root, course_models=built_course.model_loader, device="cpu",
                            progress=True)
    assert "9/9" in capsys.readouterr().err  # the progress bar counted every exercise of both days
    assert last_progress() == report
    text = format_progress(report)
    assert "day 1 (day1_toy): 1/7 passed, 1 failed, 5 not started" in text
    assert f"  graded {module}" in text
    assert "    passed       count_repeats" in text and "    failed       describe_shape" in text
    assert "day 2 (day2_toy): 0/2 passed, 2 not started" in text
    from curriculum.__main__ import main

    assert main(["progress", "--last"]) == 0  # says when, without grading
    shown = capsys.readouterr().out
    assert shown.startswith("graded ") and "(just now)" in shown.splitlines()[0] and text in shown


# ---- the whole loop, and the browser ---------------------------------------------------------------------------------
def _bench(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_bench_{name}", REPO_ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_scripted_learner_session_in_a_fresh_clone_loses_nothing(tmp_path):
    """bench/learner_session.py (committed state): start, write in the notebook and the module, build, test, grade."""
    result = _bench("learner_session").learner_session(tmp_path)
    assert result["ok"], json.dumps(result, indent=2)


@pytest.mark.skipif(not (shutil.which("chromium") and importlib.util.find_spec("jupyterlab")
                         and importlib.util.find_spec("websocket")),
                    reason="the browser proof needs Debian's chromium, jupyterlab and websocket-client")
@pytest.mark.skipif(os.environ.get("COURSE_BROWSER_PROOF") != "1",
                    reason="minutes of CPU: run with COURSE_BROWSER_PROOF=1 (or python bench/browser_proof.py)")
def test_the_notebook_runs_in_jupyterlab_and_draws_its_figures(tmp_path):
    assert _bench("browser_proof").main(["--out", str(tmp_path)]) == 0
