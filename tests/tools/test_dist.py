"""The learner's distribution (`python -m notebooks dist --learner OUT`): no solution in it, and grading works from
it alone, against the stored references."""

from __future__ import annotations

import os
import subprocess
import sys

from curriculum.tools.paths import COURSE_ROOT as REPO_ROOT
from notebooks.__main__ import main as notebooks_main


def test_the_learner_distribution_has_no_solutions_and_grades_on_its_own(tmp_path):
    out = tmp_path / "dist"
    assert notebooks_main(["dist", "--learner", str(out)]) == 0
    shipped = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    assert not [path for path in shipped if path.startswith(("solutions/", "notebooks/instructor/", "tests/"))]
    assert "checks/references/manifest.json" in shipped and "notebooks/learner/day1_induction_heads.ipynb" in shipped
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
