"""The Gradescope and PrairieLearn autograders (`python -m checks autograder`, `checks.frontends.autograder`): what they are built
of, and the results.json they write for honest, partial, hostile and ungradable submissions, on fake platform roots
graded against the fixture course (the same supervisor/worker path as `python -m checks grade`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from checks.__main__ import main as checks_main
from checks.frontends.autograder import AutograderSettings, SubmissionError, feedback, find_submission, run, torch_version
from curriculum.tools.paths import COURSE_ROOT as REPO_ROOT

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _solution(course) -> str:
    return (course.root / "solutions" / "day1_toy.py").read_text()


def _replacing(source: str, code: str) -> str:
    """`source` with the functions `code` defines replaced (a later `def` wins)."""
    return source + "\n\n" + textwrap.dedent(code) + "\n"


def _platform_root(tmp_path: Path, platform: str, files: dict[str, str]) -> Path:
    root = tmp_path / platform
    folder = root / ("submission" if platform == "gradescope" else "student")
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return root


def _grade(course, platform: str, root: Path, *extra: str, script: Path | None = None) -> dict:
    """Grade the submission under the fake platform `root` and return the results.json written there: with `script`,
    by running that built script in a process of its own, as the platform does; else by `checks.frontends.autograder.run`."""
    variable = "AUTOGRADER_ROOT" if platform == "gradescope" else "GRADE_ROOT"
    if script is None:
        os.environ[variable] = str(root)  # the hostile submission looks for it, as it would on the platform
        try:
            run(AutograderSettings(1, platform), root, course)
        finally:
            del os.environ[variable]
    else:
        env = {**os.environ, variable: str(root), "COURSE_PYTHON": sys.executable,
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([str(script), "--root", str(course.root), "--models", course.model_loader, *extra],
                              env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text())


def _by_exercise(results: dict) -> dict[str, dict]:
    return {test["name"]: test for test in results["tests"]}


def test_gradescope_autograder_is_built_and_its_run_autograder_grades_an_honest_submission(built_course, tmp_path):
    out = tmp_path / "gradescope"
    assert checks_main(["autograder", "--day", "1", "--platform", "gradescope", "--out", str(out)]) == 0
    (wheel,) = out.glob("mechinterp_course-*.whl")
    setup, runner = out / "setup.sh", out / "run_autograder"
    assert os.access(setup, os.X_OK) and os.access(runner, os.X_OK)
    assert f"torch=={torch_version()} --index-url https://download.pytorch.org/whl/cpu" in setup.read_text()
    assert f"./{wheel.name}" in setup.read_text()
    with zipfile.ZipFile(out / "autograder.zip") as bundle:  # at the archive's root, scripts executable
        assert sorted(bundle.namelist()) == sorted(["setup.sh", "run_autograder", wheel.name])
        assert bundle.getinfo("run_autograder").external_attr >> 16 & 0o111
    with zipfile.ZipFile(wheel) as built:  # the course's grading data, and no solution to read
        names = built.namelist()
    assert "checks/references/day1.pt" in names and "checks/references/manifest.json" in names
    assert "curriculum/day1_induction_heads.py" in names and "curriculum/models/induction-2l/model.safetensors" in names
    assert not [name for name in names if name.startswith("solutions/day") or "instructor/" in name]

    root = _platform_root(tmp_path, "gradescope", {"ana/day1_toy.py": _solution(built_course)})
    results = _grade(built_course, "gradescope", root, script=runner)
    assert results["score"] == 7.0 and "7/7 exercises passed" in results["output"]
    assert len(results["tests"]) == 7
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output", "visibility", "status"}
        assert (test["score"], test["max_score"], test["status"], test["visibility"]) == (1.0, 1.0, "passed",
                                                                                         "visible")


def test_prairielearn_grader_is_built_and_its_run_grader_grades_a_partial_submission(built_course, tmp_path):
    out = tmp_path / "prairielearn"
    assert checks_main(["autograder", "--day", "1", "--platform", "prairielearn", "--out", str(out),
                        "--hints", "0"]) == 0
    (wheel,) = out.glob("mechinterp_course-*.whl")
    dockerfile = (out / "Dockerfile").read_text()
    assert f"COPY {wheel.name} /opt/course/" in dockerfile and f"torch=={torch_version()}" in dockerfile
    assert 'ENTRYPOINT ["/opt/course/run_grader"]' in dockerfile
    options = json.loads((out / "info.json").read_text())["externalGradingOptions"]
    assert options["entrypoint"] == "/opt/course/run_grader" and options["timeout"] <= 600
    runner = out / "run_grader"
    assert os.access(runner, os.X_OK) and "--hints 0" in runner.read_text()

    solution = _solution(built_course)
    partial = _replacing(solution.replace("model(tokens).mean().item()", "model(tokens).mean().item() * 2"), """
        def distinct_tokens(tokens):
            \"\"\"The distinct token ids in `tokens`, in any order.\"\"\"
            raise NotImplementedError("write distinct_tokens, then run check(distinct_tokens)")""")
    root = _platform_root(tmp_path, "prairielearn", {"day1_toy.py": partial})
    results = _grade(built_course, "prairielearn", root, script=runner)
    assert results["gradable"] is True
    assert results["score"] == pytest.approx(5 / 7)
    tests = _by_exercise(results)
    assert len(tests) == 7
    for test in tests.values():
        assert set(test) >= {"name", "points", "max_points", "message", "output"} and test["max_points"] == 1
    assert tests["mean_logit"]["points"] == 0 and "2" in tests["mean_logit"]["output"]  # the diagnosis (a factor)
    assert tests["distinct_tokens"]["points"] == 0 and tests["distinct_tokens"]["message"] == "not started"
    assert tests["count_repeats"]["points"] == 1 and tests["count_repeats"]["message"] == "passed"


HOSTILE = """
    import ctypes, json, os

    FORGED = {"score": 1000.0, "gradable": True, "tests": []}

    def slow_sum(tokens):
        while True:
            pass

    def count_repeats(tokens):
        os._exit(0)

    def describe_shape(tokens):
        return ctypes.string_at(0)  # a segmentation fault

    def distinct_tokens(tokens):
        for folder in (os.environ.get("AUTOGRADER_ROOT"), os.environ.get("GRADE_ROOT")):
            if folder:
                with open(os.path.join(folder, "results", "results.json"), "w") as handle:
                    json.dump(FORGED, handle)
        return sorted(set(tokens.flatten().tolist()))
"""


@pytest.mark.parametrize("platform", ["gradescope", "prairielearn"])
def test_hostile_submissions_get_a_truthful_result(built_course, tmp_path, platform):
    root = _platform_root(tmp_path, platform, {"day1_toy.py": _replacing(_solution(built_course), HOSTILE)})
    results = _grade(built_course, platform, root)
    tests = _by_exercise(results)
    assert len(tests) == 7  # every exercise is counted, and the forged results file was not kept
    points = "score" if platform == "gradescope" else "points"
    passed = sorted(name for name, test in tests.items() if test[points] == 1)
    assert passed == ["attention_pattern", "head_summary", "mean_logit"]
    assert results["score"] == (3.0 if platform == "gradescope" else pytest.approx(3 / 7))
    assert "did not return within 1 s" in tests["slow_sum"]["output"]
    assert "exited with code 0" in tests["count_repeats"]["output"]
    assert "SIGSEGV" in tests["describe_shape"]["output"]
    assert "results.json" in tests["distinct_tokens"]["output"]  # the refused write is named


def test_a_notebook_submission_is_graded(built_course, tmp_path):
    import jupytext

    root = _platform_root(tmp_path, "gradescope", {})
    notebook = jupytext.reads(_solution(built_course), fmt="py:percent")
    jupytext.write(notebook, root / "submission" / "day1_toy.ipynb")
    results = _grade(built_course, "gradescope", root)
    assert results["score"] == 7.0 and "graded day1_toy.ipynb" in results["output"]


def test_submissions_that_cannot_be_graded(built_course, tmp_path):
    syntax = _solution(built_course).replace("def count_repeats(", "def count_repeats((")
    pl_syntax = _grade(built_course, "prairielearn", _platform_root(tmp_path / "a", "prairielearn",
                                                                    {"day1_toy.py": syntax}))
    assert pl_syntax["gradable"] is False and "syntax error at line" in pl_syntax["format_errors"][0]
    pl_empty = _grade(built_course, "prairielearn", _platform_root(tmp_path / "b", "prairielearn",
                                                                   {"notes.txt": "I ran out of time"}))
    assert pl_empty["gradable"] is False and "no .py or .ipynb file" in pl_empty["message"]
    assert "notes.txt" in pl_empty["message"]
    gs_syntax = _grade(built_course, "gradescope", _platform_root(tmp_path / "c", "gradescope",
                                                                  {"day1_toy.py": syntax}))
    # Gradescope has no "not gradable": the cell that does not parse fails the 5 exercises it defines, the others pass
    assert gs_syntax["score"] == 2 and len(gs_syntax["tests"]) == 7
    failed = [test for test in gs_syntax["tests"] if test["score"] == 0]
    assert [test["name"] for test in failed] == ["count_repeats", "describe_shape", "head_summary", "distinct_tokens",
                                                 "slow_sum"]
    assert all("syntax error" in test["output"] and test["max_score"] == 1 for test in failed)
    gs_two = _grade(built_course, "gradescope", _platform_root(tmp_path / "d", "gradescope",
                                                               {"a.py": "", "b.py": ""}))
    assert gs_two["score"] == 0 and "several files were submitted (a.py, b.py)" in gs_two["output"]
    assert [test["max_score"] for test in gs_two["tests"]] == [1.0] * 7


def test_find_submission_picks_the_days_file(built_course, tmp_path):
    day = built_course.days[1]
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "._day1_toy.py").write_text("")
    (tmp_path / "repo" / "notes").mkdir(parents=True)
    (tmp_path / "repo" / "notes" / "scratch.py").write_text("")
    (tmp_path / "repo" / "day1_toy.ipynb").write_text("{}")
    assert find_submission(tmp_path, day) == tmp_path / "repo" / "day1_toy.ipynb"
    (tmp_path / "repo" / "day1_toy.py").write_text("")  # a jupytext pair: the module is graded
    assert find_submission(tmp_path, day) == tmp_path / "repo" / "day1_toy.py"
    with pytest.raises(SubmissionError, match="no submission folder"):
        find_submission(tmp_path / "missing", day)


def test_feedback_shows_the_hint_tiers_the_autograder_was_built_with():
    failed = {"status": "failed", "message": "values differ at [0, 1]", "case": "batch 3"}
    tiers = ("Which positions may a query attend to?", "Mask the future, then softmax.", "scores.masked_fill(...)")
    assert feedback(failed, tiers, 0) == "values differ at [0, 1]"
    assert feedback(failed, tiers, 2).endswith("Hint: Which positions may a query attend to?\n"
                                               "Approach: Mask the future, then softmax.")
    assert "Recipe" in feedback(failed, tiers, 3)
    assert feedback({"status": "passed", "message": "", "case": ""}, tiers, 3) == "passed"
    stale = {"status": "stale reference", "message": "run python -m checks references", "case": ""}
    assert "not of your code" in feedback(stale, tiers, 1) and "Hint" not in feedback(stale, tiers, 1)


def test_an_autograder_of_a_day_the_course_lacks_is_refused(tmp_path, capsys):
    out = tmp_path / "ag"
    assert checks_main(["autograder", "--day", "9", "--platform", "gradescope", "--out", str(out)]) == 2
    assert "there is no day 9" in capsys.readouterr().err
    assert not out.exists()
