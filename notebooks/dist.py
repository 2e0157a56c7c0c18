"""The learner's distribution: the course without its solutions (`python -m notebooks dist --learner OUT`).

It holds what a learner works with and what grading needs: the stubs and helpers of `curriculum/` (with the zoo's
weights), the learner notebooks, the grading plugin with its specs and stored reference outputs (grading compares
against those; it never runs a solution), the builder's exercise finder, and the packaging files. It leaves out
`solutions/`, `notebooks/instructor/` (executed solutions), `tests/` and `bench/` (which import the solutions), and
the zoo's maintainer tools (`MAINTAINER_ONLY`).
Hand this folder, or a wheel built from it (`pip wheel OUT`), to a class; the repository itself is the instructors'.
"""

from __future__ import annotations

import shutil
from pathlib import Path

INCLUDED = ("pyproject.toml", "README.md", "mechinterp_course_pytest.py", "checks", "curriculum",
            "notebooks/__init__.py", "notebooks/__main__.py", "notebooks/builder.py", "notebooks/exercises.py",
            "notebooks/dist.py", "notebooks/learner")
MAINTAINER_ONLY = ("curriculum/models/__main__.py", "curriculum/models/training.py", "curriculum/models/card.py",
                   "curriculum/models/measure.py", "curriculum/models/recipes/induction_2l.py",
                   "curriculum/models/recipes/toy_gpt.py", "curriculum/models/recipes/array_2l1h.py")
"""The zoo's maintainer tools (`python -m curriculum.models train|measure|card`), left out: a learner never retrains a
model, and the measures behind the model cards compute what Day 1's exercises ask (previous-token and induction
scores). `recipes/array_indexing_data.py` stays: grading samples Day 4's batches with it."""
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")


class DistError(Exception):
    """The distribution cannot be written (a missing part, or a destination that is not empty)."""


def write_learner_dist(root: Path, out: Path) -> list[Path]:
    """Copy the learner's part of the course at `root` into the new or empty folder `out`; return the top-level
    paths written. Raises DistError when `out` holds anything or a solution would be shipped."""
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        raise DistError(f"{out} is not empty: give a new folder")
    missing = [name for name in INCLUDED if not (root / name).exists()]
    if missing:
        raise DistError(f"the course at {root} lacks {', '.join(missing)}")
    written = []
    for name in INCLUDED:
        source, target = root / name, out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=_SKIPPED)
        else:
            shutil.copy2(source, target)
        written.append(target)
    for name in MAINTAINER_ONLY:
        (out / name).unlink(missing_ok=True)
    shipped = [path for path in out.rglob("*") if "solutions" in path.relative_to(out).parts[:1]
               or path.relative_to(out).parts[:2] == ("notebooks", "instructor")]
    if shipped:
        raise DistError(f"the distribution would ship solutions: {shipped[0]}")
    return written
