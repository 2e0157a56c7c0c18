"""The learner's distribution (`python -m notebooks dist --learner OUT`): no solution in it, and grading works from
it alone, against the stored references."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curriculum.tools.paths import COURSE_ROOT as REPO_ROOT
from notebooks.__main__ import main as notebooks_main


@pytest.fixture(scope="module")
def learner_dist(tmp_path_factory) -> Path:
    """The learner's distribution, written once by its command for the tests of this file (which only read it)."""
    out = tmp_path_factory.mktemp("learner") / "dist"
    assert notebooks_main(["dist", "--learner", str(out)]) == 0
    return out


def test_the_learner_distribution_has_no_solutions_and_grades_on_its_own(learner_dist, tmp_path):
    out = learner_dist
    shipped = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    assert not [path for path in shipped if path.startswith(("solutions/", "notebooks/instructor/", "tests/"))]
    assert "checks/references/manifest.json" in shipped and "notebooks/learner/day1_induction_heads.ipynb" in shipped
    assert "curriculum/models/recipes/array_indexing_data.py" in shipped  # Day 4's grading samples with it
    assert not shipped & {"curriculum/models/measure.py", "curriculum/models/training.py"}  # the zoo's maintainer tools
    # no exercise's solution body is in it: the generated stubs keep only signatures and docstrings
    solution = (REPO_ROOT / "solutions" / "day1_induction_heads.py").read_text()
    body = "    return " + solution.split("def per_token_loss", 1)[1].split("\n    return ", 1)[1].split("\n", 1)[0]
    assert not [path for path in shipped if path.endswith(".py") and body in (out / path).read_text()]
    # a learner who wrote every exercise (here: the solution, copied) passes, graded from the distribution alone
    learner = tmp_path / "day1_induction_heads.py"
    learner.write_text(solution)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MECHINTERP_WORKSPACE": str(tmp_path / "workspace")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--day", "1", "--learner",
                          str(learner)], cwd=out, env=env, capture_output=True, text=True, timeout=900)
    assert "day 1: 13/13 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    where = subprocess.run([sys.executable, "-c", "import checks, mechinterp_course_pytest as p; print(checks.__file__,"
                            " p.__file__)"], cwd=out, env=env, capture_output=True, text=True, timeout=120)
    assert where.stdout.split() == [str(out / "checks" / "__init__.py"), str(out / "mechinterp_course_pytest.py")]


def _function_bodies(path):
    """The body of every function defined in the file at `path` (docstring dropped), as comparable AST dumps."""
    bodies = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body[1:] if ast.get_docstring(node) is not None else node.body
            bodies.add(ast.dump(ast.Module(body=body, type_ignores=[])))
    return bodies


def test_the_learner_distribution_holds_no_code_that_computes_a_mistake_or_a_reference(learner_dist):
    """What a declared mistake returns, and a reference that is not a solution's output, are computed by
    solutions/oracles (near-answers) when the references are built; the distribution ships their stored outputs
    only: no module of it defines a function with an oracle's body, or imports the solutions."""
    from checks.course import Course
    from checks.store.references import oracle_names

    out = learner_dist
    course = Course.default()
    named = {(day.number, name) for day in course.days.values() for check in day.checks for name in oracle_names(check)}
    assert len(named) >= 30, named
    oracle_bodies = set()
    for number, name in named:  # every name a check gives is a function beside the solutions
        path = course.day(number).oracle_path
        assert name in {node.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef)}
    for path in (REPO_ROOT / "solutions" / "oracles").glob("*.py"):
        oracle_bodies |= _function_bodies(path)
    for path in sorted(out.rglob("*.py")):
        shipped = _function_bodies(path)
        assert not shipped & oracle_bodies, f"{path.relative_to(out)} computes a mistake or a reference"
        imported = [alias.name if isinstance(node, ast.Import) else node.module or ""
                    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                    if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in getattr(node, "names", [])]
        assert not [name for name in imported if name.split(".")[0] == "solutions"], path.relative_to(out)
    assert any(path.name.endswith(".mistakes.pt") for path in (out / "checks" / "references").iterdir())


MOVED_TO_BENCH = ("greedy_prune", "greedy_prune_sequential", "MeanAblation", "PassRuns", "patch_heads_by_position")
"""Fast answers to Day 5's batched exercises, kept in bench/fast_circuits.py for the benchmarks."""


def _exercise_names() -> set[str]:
    from notebooks.exercises import exercise_names

    return {name for path in sorted((REPO_ROOT / "solutions").glob("day*.py"))
            for name in exercise_names(path.read_text(encoding="utf-8"))}


def _shipped_definitions(out: Path) -> dict[str, list[str]]:
    """name -> the modules of the distribution at `out` that define it at top level (a function, class or
    assignment), the generated exercise stubs (curriculum/dayN_*.py, which must define the exercises) left out."""
    found: dict[str, list[str]] = {}
    for path in sorted(out.rglob("*.py")):
        relative = path.relative_to(out)
        if relative.parts[0] == "curriculum" and len(relative.parts) == 2 and relative.name.startswith("day"):
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [target.id for target in targets if isinstance(target, ast.Name)]
            else:
                continue
            for defined in names:
                found.setdefault(defined, []).append(relative.as_posix())
    return found


def test_no_shipped_module_defines_an_exercise_or_a_fast_answer(learner_dist):
    """The learner's library is plumbing: no module the distribution ships (besides the exercise stubs) defines a
    function named like an exercise of any day, or one of the fast answers moved to bench/."""
    exercises = _exercise_names()
    assert {"greedy_prune_batched", "head_patching_by_position", "per_token_loss"} <= exercises
    defined = _shipped_definitions(learner_dist)
    assert "logits_with_residual_patch" in defined  # the scan reads the library
    clashes = {name: defined[name] for name in sorted((exercises | set(MOVED_TO_BENCH)) & defined.keys())}
    assert not clashes, f"shipped modules define exercise answers: {clashes}"


def test_day5_finds_its_circuits_with_the_learners_own_pruning():
    """Day 5's IOI and number-sequence circuits come from the day's exercise `greedy_prune_batched`, and the day
    calls nothing of bench/fast_circuits.py."""
    source = (REPO_ROOT / "solutions" / "day5_circuit_discovery.py").read_text(encoding="utf-8")
    calls = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    calls[target.id] = ast.unparse(node.value.func)
    assert calls["kept_positions"] == "greedy_prune_batched", calls["kept_positions"]
    assert calls["kept_numbers"] == "greedy_prune_batched", calls["kept_numbers"]
    used = {node.attr for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Attribute)}
    assert not used & set(MOVED_TO_BENCH), used & set(MOVED_TO_BENCH)
