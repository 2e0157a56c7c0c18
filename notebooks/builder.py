"""Build every generated file of a day from its single source, `solutions/dayN_<topic>.py` (jupytext percent format).

- `curriculum/dayN_<topic>.py`: the source with every exercise's solution replaced by a stub. An exercise is a
  top-level function in a cell tagged `# %% tags=["exercise"]`; its decorators, signature, type hints and docstring
  are kept, everything after the docstring becomes `raise NotImplementedError(...)`. A header says the file is
  generated and records the SHA-256 of the generated content, so the builder can tell a learner's edits and refuses
  to overwrite them unless forced.
- `notebooks/learner/dayN_<topic>.ipynb`: the same stubs as a notebook, without outputs.
- `notebooks/instructor/dayN_<topic>.ipynb`: the solutions as a notebook, executed with nbclient on this machine's
  Python kernel (offline: HF_HUB_OFFLINE=1). Figures are stored as plotly's JSON mimetype, which JupyterLab,
  Notebook 7 and VS Code draw with the plotly.js they bundle: nothing is loaded from the network and a notebook stays
  small (embedding plotly.js would add 3.5 MB to each one). Timestamps are dropped, so rebuilding an unchanged day
  rewrites the same bytes.

A generated file is stale when it differs from what the builder would write now: the curriculum module by its text,
notebooks by their cells (type, source, tags), never by outputs. Every generated file records the hash of what the
builder wrote (the module in its header, a notebook in its metadata); the builder never overwrites a file whose
content it did not write (a learner's edits, a notebook run and saved in Jupyter) unless run with --force, and names
the file. A learner's own copies live in their workspace (`curriculum.tools.workspace`), which the builder never
touches.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nbformat

from notebooks.exercises import CELL_MARKER, exercise_functions

_HASH_LINE = re.compile(r"^# content-sha256: ([0-9a-f]{64})$", re.MULTILINE)
_DAY_FILE = re.compile(r"^day(\d+)_\w+\.py$")


class BuildError(Exception):
    """The source cannot be built (e.g. an exercise without a docstring) or a file must not be overwritten."""


# ---- stubs -----------------------------------------------------------------------------------------------------------
def stub_exercises(source: str) -> str:
    """`source` with the body of every exercise after its docstring replaced by `raise NotImplementedError(...)`."""
    lines = source.splitlines(keepends=True)
    replacements: list[tuple[int, int, str]] = []  # (first line index, end line index exclusive, text)
    for node in exercise_functions(source):
        body = node.body
        if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            raise BuildError(f"exercise {node.name!r} (line {node.lineno}) has no docstring: the learner needs one")
        if len(body) == 1:
            raise BuildError(f"exercise {node.name!r} (line {node.lineno}) has no solution after its docstring")
        docstring = body[0]
        if body[1].lineno == docstring.end_lineno:
            raise BuildError(f"exercise {node.name!r}: put the solution on the lines after the docstring")
        indent = " " * docstring.col_offset
        start = docstring.end_lineno  # 0-based index of the first line after the docstring
        end = _end_of_body(lines, node.end_lineno, docstring.col_offset)
        stub = f'{indent}raise NotImplementedError("write {node.name}, then run check({node.name})")\n'
        replacements.append((start, end, stub))
    for start, end, stub in reversed(replacements):
        lines[start:end] = [stub]
    return "".join(lines)


def _end_of_body(lines: list[str], end_lineno: int, indent: int) -> int:
    """Index after the function's last line, including trailing comments indented as its body."""
    end = end_lineno
    scan = end
    while scan < len(lines):
        line = lines[scan]
        if not line.strip():
            scan += 1
            continue
        if line.startswith(" " * indent) and line.lstrip().startswith("#") and not CELL_MARKER.match(line):
            scan += 1
            end = scan
            continue
        break
    return end


# ---- the curriculum module and its header ----------------------------------------------------------------------------
def curriculum_text(solution_path: Path) -> str:
    """The learner's module for a solution file: header + stubbed source."""
    body = stub_exercises(solution_path.read_text(encoding="utf-8"))
    return _with_header(body, solution_path.name)


def _split_yaml_header(text: str) -> tuple[str, str]:
    lines = text.splitlines(keepends=True)
    if lines and lines[0].rstrip() == "# ---":
        for index in range(1, len(lines)):
            if lines[index].rstrip() == "# ---":
                return "".join(lines[: index + 1]), "".join(lines[index + 1:])
    return "", text


def _with_header(body: str, solution_name: str) -> str:
    digest = hashlib.sha256(body.encode()).hexdigest()
    header = (f"# GENERATED by `python -m notebooks build` from solutions/{solution_name}: fill in the exercises "
              "here.\n"
              "# The builder never overwrites this file once you have edited it (unless run with --force).\n"
              f"# content-sha256: {digest}\n")
    yaml_header, rest = _split_yaml_header(body)
    return yaml_header + header + rest


def _without_header(text: str) -> tuple[str | None, str]:
    """(recorded hash or None, the text with the header removed)."""
    match = _HASH_LINE.search(text)
    if match is None:
        return None, text
    lines = text.splitlines(keepends=True)
    hash_index = next(i for i, line in enumerate(lines) if _HASH_LINE.match(line.rstrip("\n")))
    return match.group(1), "".join(lines[: hash_index - 2] + lines[hash_index + 1:])


def learner_edited(path: Path) -> bool:
    """Whether an existing curriculum file no longer matches the hash in its header (or has no header)."""
    recorded, body = _without_header(path.read_text(encoding="utf-8"))
    return recorded is None or hashlib.sha256(body.encode()).hexdigest() != recorded


# ---- notebooks -------------------------------------------------------------------------------------------------------
_PROVENANCE = "course_generated"  # notebook metadata: the SHA-256 of the notebook as the builder wrote it


def make_learner_notebook(curriculum: str, solution_name: str) -> nbformat.NotebookNode:
    """The learner's notebook of a day: the stubbed source, with a first cell saying where the solutions are and how
    to ask for hints, and after the imports the set-up that lets "Run All" go past unwritten exercises."""
    notebook = to_notebook(_without_header(curriculum)[1])
    number = _DAY_FILE.match(solution_name).group(1)  # type: ignore[union-attr]
    guide = nbformat.v4.new_markdown_cell(
        f"**Your copy of day {number}.** Work in the copy that `python -m curriculum start {number}` makes in your "
        "workspace (this course never writes there); `pytest --day " + number + "` grades it.\n\n"
        "`check(fn)` grades one exercise and says what differs; `check(fn, hint=True)` adds the course's hint. "
        f"The solutions are in the course's `solutions/{solution_name}` and the instructor notebook "
        f"`notebooks/instructor/{solution_name[:-3]}.ipynb`: look there only once you have tried.")
    run_all = nbformat.v4.new_code_cell(
        "# \"Run All\" goes on past exercises you have not written yet: a cell that needs one says which, in one line.\n"
        "from curriculum.tools.run_all import keep_going_past_stubs\n\n"
        "keep_going_past_stubs()")
    # after the first code cell of the source: it holds the imports, where `from __future__` must come first
    first_code = next((i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" and cell.source.strip()),
                      -1)
    notebook.cells.insert(first_code + 1, run_all)
    notebook.cells.insert(0, guide)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"
    nbformat.validate(notebook)
    return notebook


def notebook_digest(notebook: nbformat.NotebookNode) -> str:
    """SHA-256 of a notebook's canonical JSON, leaving out the builder's own provenance record."""
    copy = nbformat.from_dict(notebook)
    copy.metadata.pop(_PROVENANCE, None)
    return hashlib.sha256(nbformat.writes(copy).encode()).hexdigest()


def write_notebook(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Write `notebook`, recording in its metadata the hash of what was written (see `written_by_builder`)."""
    notebook.metadata[_PROVENANCE] = {"by": "python -m notebooks build", "sha256": notebook_digest(notebook)}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)


def written_by_builder(path: Path) -> bool:
    """Whether the generated file at `path` still holds exactly what the builder wrote (a curriculum module: the hash
    in its header; a notebook: the hash in its metadata). Running a notebook in Jupyter or editing it makes it
    the user's, and the builder then refuses to overwrite it without --force."""
    if path.suffix == ".py":
        return not learner_edited(path)
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception:  # not even a notebook any more
        return False
    recorded = notebook.metadata.get(_PROVENANCE, {}).get("sha256")
    return recorded is not None and recorded == notebook_digest(notebook)


def to_notebook(source: str) -> nbformat.NotebookNode:
    """A percent-format source as a notebook without outputs, with deterministic cell ids."""
    import jupytext

    notebook = jupytext.reads(source, fmt="py:percent")
    notebook.metadata.pop("jupytext", None)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"
    nbformat.validate(notebook)
    return notebook


def cell_signature(notebook: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    """What makes a notebook stale: each cell's type, source and tags (never outputs)."""
    return [(cell.cell_type, cell.source, tuple(cell.metadata.get("tags", ()))) for cell in notebook.cells]


def execute(notebook: nbformat.NotebookNode, cwd: Path, timeout_s: int = 900) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel of this Python, offline, with figures stored as plotly JSON."""
    from nbclient import NotebookClient

    saved = {key: os.environ.get(key) for key in ("HF_HUB_OFFLINE", "PLOTLY_RENDERER")}
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["PLOTLY_RENDERER"] = "plotly_mimetype"
    try:
        client = NotebookClient(notebook, timeout=timeout_s, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}})
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    for cell in notebook.cells:
        make_reproducible(cell)
    nbformat.validate(notebook)
    return notebook


def make_reproducible(cell: nbformat.NotebookNode) -> None:
    """Drop execution timestamps and join consecutive prints to one stream (the kernel splits them by timing), so
    that rebuilding an unchanged day rewrites the same notebook."""
    cell.metadata.pop("execution", None)
    outputs = []
    for output in cell.get("outputs", []):
        previous = outputs[-1] if outputs else None
        if (output.output_type == "stream" and previous is not None and previous.output_type == "stream"
                and previous.name == output.name):
            previous.text += output.text
        else:
            outputs.append(output)
    if "outputs" in cell:
        cell.outputs = outputs


# ---- the build -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayFiles:
    """The source of one day and the files generated from it, under a course root."""

    root: Path
    solution: Path

    @property
    def number(self) -> int:
        return int(_DAY_FILE.match(self.solution.name).group(1))  # type: ignore[union-attr]

    @property
    def curriculum(self) -> Path:
        return self.root / "curriculum" / self.solution.name

    @property
    def learner_notebook(self) -> Path:
        return self.root / "notebooks" / "learner" / f"{self.solution.stem}.ipynb"

    @property
    def instructor_notebook(self) -> Path:
        return self.root / "notebooks" / "instructor" / f"{self.solution.stem}.ipynb"


def find_days(root: Path, days: list[int] | None = None) -> list[DayFiles]:
    """Every `solutions/dayN_<topic>.py` of the course at `root` (only days `days` if given), by day number."""
    found = [DayFiles(root, path) for path in sorted((root / "solutions").glob("day*_*.py"))
             if _DAY_FILE.match(path.name)]
    found.sort(key=lambda files: files.number)
    if days is not None:
        missing = set(days) - {files.number for files in found}
        if missing:
            raise BuildError(f"no solutions/dayN_*.py for day(s) {sorted(missing)} in {root}")
        found = [files for files in found if files.number in days]
    return found


def expected_files(files: DayFiles) -> tuple[str, nbformat.NotebookNode, nbformat.NotebookNode]:
    """What the builder writes for a day: the curriculum text, the learner and the (unexecuted) instructor notebook."""
    curriculum = curriculum_text(files.solution)
    source = files.solution.read_text(encoding="utf-8")
    return curriculum, make_learner_notebook(curriculum, files.solution.name), to_notebook(source)


def stale_files(files: DayFiles) -> list[Path]:
    """The generated files of a day that are missing or differ from what the builder would write now."""
    stale = []
    curriculum, learner, instructor = expected_files(files)
    if not files.curriculum.is_file() or files.curriculum.read_text(encoding="utf-8") != curriculum:
        stale.append(files.curriculum)
    for path, notebook in {files.learner_notebook: learner, files.instructor_notebook: instructor}.items():
        if not path.is_file() or cell_signature(nbformat.read(path, as_version=4)) != cell_signature(notebook):
            stale.append(path)
    return stale


def not_written_by_builder(files: DayFiles) -> list[Path]:
    """The existing generated files of a day whose content the builder did not write (edited, or run in Jupyter)."""
    paths = (files.curriculum, files.learner_notebook, files.instructor_notebook)
    return [path for path in paths if path.is_file() and not written_by_builder(path)]


def build_day(files: DayFiles, force: bool = False, log: Callable[[str], None] | None = print) -> list[Path]:
    """Write a day's generated files that are stale (all of them with `force`); returns the paths written.

    Raises BuildError, writing nothing, when a file to write holds content the builder did not write (a learner's
    edits, a notebook run in Jupyter) and `force` is False: the message names each such file.
    """
    log = log or (lambda message: None)
    curriculum, learner, instructor = expected_files(files)
    stale = set(stale_files(files))
    to_write = [path for path in (files.curriculum, files.learner_notebook, files.instructor_notebook)
                if force or path in stale]
    theirs = [path for path in to_write if path in not_written_by_builder(files)]
    if theirs and not force:
        raise BuildError("not overwriting " + ", ".join(str(path) for path in theirs) + ": the builder did not write "
                         "its content (edited by hand, or a notebook run and saved in Jupyter). Your own work belongs "
                         "in your workspace (`python -m curriculum start N`); move it there, or rebuild with --force "
                         "to discard it.")
    written = []
    if files.curriculum in to_write:
        files.curriculum.parent.mkdir(parents=True, exist_ok=True)
        files.curriculum.write_text(curriculum, encoding="utf-8")
        written.append(files.curriculum)
    if files.learner_notebook in to_write:
        write_notebook(learner, files.learner_notebook)
        written.append(files.learner_notebook)
    if files.instructor_notebook in to_write:
        log(f"executing {files.instructor_notebook.name} ...")
        write_notebook(execute(instructor, cwd=files.root), files.instructor_notebook)
        written.append(files.instructor_notebook)
    for path in written:
        log(f"wrote {path.relative_to(files.root)}")
    return written
