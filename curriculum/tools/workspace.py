"""The learner's workspace: their own copy of each day, where no build, test or update of the course ever writes.

    python -m curriculum start 1        copy day 1's pristine notebook and module into the workspace
    python -m curriculum progress       every day, its exercises and your status on each (grades afresh)

The workspace is the folder named by the environment variable `MECHINTERP_WORKSPACE`, else `~/mechinterp-course`: a
folder of the learner's, outside the course's files, so the same for an editable and a wheel install and found from
any working directory. A day there is a pair, `dayN_<topic>.ipynb` and `dayN_<topic>.py`, the same document in two
forms (jupytext pairing: JupyterLab with the jupytext extension saves both on every save). `pytest --day N` grades
the more recently modified of the two, or the pristine stub when the day has not been started.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from curriculum.tools.paths import COURSE_ROOT

WORKSPACE_ENV = "MECHINTERP_WORKSPACE"
DEFAULT_WORKSPACE = Path("~/mechinterp-course")
_DAY_MODULE = re.compile(r"^day(\d+)_\w+\.py$")


class WorkspaceError(Exception):
    """A day cannot be started (unknown day, or the learner's copy already exists)."""


def workspace_dir(folder: Path | str | None = None) -> Path:
    """`folder`, else $MECHINTERP_WORKSPACE, else ~/mechinterp-course (not created here)."""
    chosen = folder or os.environ.get(WORKSPACE_ENV) or DEFAULT_WORKSPACE
    return Path(chosen).expanduser().resolve()


def day_modules(root: Path = COURSE_ROOT) -> dict[int, str]:
    """Module name of every generated day (`curriculum/dayN_<topic>.py`), by day number."""
    found = {}
    for path in (root / "curriculum").glob("day*_*.py"):
        match = _DAY_MODULE.match(path.name)
        if match:
            found[int(match.group(1))] = path.stem
    return dict(sorted(found.items()))


def learner_copies(module: str, folder: Path | str | None = None) -> list[Path]:
    """The learner's files of the day `module` in the workspace, the one to grade first (most recently modified;
    the module when both are as old)."""
    base = workspace_dir(folder)
    copies = [path for path in (base / f"{module}.py", base / f"{module}.ipynb") if path.is_file()]
    return sorted(copies, key=lambda path: -path.stat().st_mtime_ns)


def start_day(number: int, folder: Path | str | None = None, root: Path = COURSE_ROOT) -> list[Path]:
    """Copy day `number`'s pristine learner notebook into the workspace as a notebook paired with a .py module.

    Never overwrites: if either copy exists, raises WorkspaceError naming it. Returns the paths written.
    """
    import jupytext

    modules = day_modules(root)
    if number not in modules:
        known = ", ".join(str(n) for n in modules) or "none"
        raise WorkspaceError(f"there is no day {number} (days: {known})")
    module = modules[number]
    base = workspace_dir(folder)
    targets = [base / f"{module}.ipynb", base / f"{module}.py"]
    existing = [path for path in targets if path.exists()]
    if existing:
        raise WorkspaceError(f"day {number} is already started: {' and '.join(map(str, existing))} "
                             f"{'hold' if len(existing) > 1 else 'holds'} your work, which this command never "
                             "overwrites (rename it to start afresh)")
    notebook = jupytext.read(_pristine_notebook(root, module))
    notebook.metadata.pop("course_generated", None)  # the builder's record of what it wrote: this copy is the learner's
    notebook.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    base.mkdir(parents=True, exist_ok=True)
    # the notebook first: jupytext refuses to open a pair whose .ipynb is newer than its text file
    jupytext.write(notebook, targets[0])
    jupytext.write(notebook, targets[1], fmt="py:percent")
    return targets


def _pristine_notebook(root: Path, module: str) -> Path:
    notebook = root / "notebooks" / "learner" / f"{module}.ipynb"
    if not notebook.is_file():
        raise WorkspaceError(f"{notebook} is missing: build it with `python -m notebooks build`")
    return notebook
