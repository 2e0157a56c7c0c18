"""Import a learner's day module (a .py file or a .ipynb notebook) without running any of its experiments.

The rule: only these top-level statements of the module are executed, in order; everything else is skipped.
- the module docstring, `import` and `from ... import` statements;
- `def`, `async def` and `class` statements (with their decorators);
- the statements that define a global name those functions and classes use, and, transitively, the names those
  statements use: `NEG_INF = float("-inf")`, `VOCAB = load_vocab()`, a helper's lookup table, an `if`/`try` block
  at top level that assigns such a name (never an `if MAIN:` / `if __name__ == ...` block);
- plain assignments whose right-hand side calls nothing but a few harmless functions (`torch.device`,
  `torch.cuda.is_available`, `TypeVar`, `NewType`, `Path`): constants, type aliases such as
  `Float[Tensor, "batch pos"]`, and `MAIN = __name__ == "__main__"`;
- `try` blocks made only of such statements (e.g. an import with a fallback), and `if TYPE_CHECKING:` blocks.
Skipped: bare expressions and calls (`torch.set_grad_enabled(False)`, `print(...)`), `for`/`while`/`with` blocks,
`if MAIN:` blocks (the exploration cells), and assignments no function uses (`model = load_model(...)` in an
exploration cell). So the learner's functions see the same module-level constants, imports and helpers as in their
notebook, and grading never runs an experiment, whether or not they kept the `if MAIN:` guards. A function that
uses a name defined only by exploration code fails with a NameError that says so (`explain_name_error`).

A notebook is converted to a script with jupytext first; its source is registered with `linecache` so tracebacks
show the learner's lines.
"""

from __future__ import annotations

import ast
import hashlib
import linecache
import re
import symtable
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checks.course import Course, Day

_HARMLESS_CALLS = {"device", "is_available", "TypeVar", "NewType", "Path"}


class LearnerModuleError(Exception):
    """The learner's file cannot be read or compiled (e.g. a syntax error); every exercise of the day fails."""


def read_source(path: Path) -> str:
    """The Python source of a .py file, or of a .ipynb notebook converted with jupytext (percent format)."""
    if not path.is_file():
        raise LearnerModuleError(f"no such file: {path}")
    if path.suffix == ".ipynb":
        import jupytext

        import nbformat

        try:
            notebook = jupytext.read(path)
        except Exception as error:  # nbformat/json errors come in many types
            raise LearnerModuleError(f"cannot read the notebook {path}: {error}") from error
        # only the cells' kinds and text: jupytext's metadata (the notebook's or a cell's) can make a markdown cell
        # come out as code (e.g. `cell_markers: '"""'`), and markdown never runs
        plain = nbformat.v4.new_notebook()
        makers = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
                  "raw": nbformat.v4.new_raw_cell}
        plain.cells = [makers[cell.cell_type](str(cell.source)) for cell in notebook.cells
                       if cell.cell_type in makers]
        return jupytext.writes(plain, fmt="py:percent")
    if path.suffix != ".py":
        raise LearnerModuleError(f"expected a .py module or a .ipynb notebook, got {path}")
    return path.read_text(encoding="utf-8")


def definitions_only(tree: ast.Module, source: str | None = None) -> ast.Module:
    """The module with only the statements the rule above keeps (`source`, the text `tree` was parsed from, saves
    unparsing it)."""
    kept = [_kept(node, is_first=index == 0) for index, node in enumerate(tree.body)]
    needed = _globals_used_by_definitions(tree, kept, source)
    changed = True
    while changed:  # keep what defines a needed name, then what that uses, until nothing changes
        changed = False
        for index, node in enumerate(tree.body):
            if not kept[index] and _may_define_for_functions(node) and _defined_names(node) & needed:
                kept[index] = True
                needed |= _loaded_names(node)
                changed = True
    body = [node for node, keep in zip(tree.body, kept) if keep]
    return ast.Module(body=body, type_ignores=tree.type_ignores)


def exploration_names(tree: ast.Module, kept_module: ast.Module | None = None) -> set[str]:
    """Names that only skipped top-level statements define (e.g. `tokens` assigned in an `if MAIN:` cell);
    `kept_module` is `definitions_only(tree)` when the caller has it already."""
    kept = (kept_module or definitions_only(tree)).body
    defined_by_kept = set().union(*(_defined_names(node) for node in kept)) if kept else set()
    skipped = [node for node in tree.body if node not in kept]
    return set().union(*(_defined_names(node) for node in skipped)) - defined_by_kept if skipped else set()


def explain_name_error(module: ModuleType, message: str) -> str:
    """`message` with a line of explanation when it reports a NameError for a name of the learner's file that only
    exploration code defines (which grading never runs)."""
    found = re.findall(r"NameError: name '(\w+)' is not defined", message)
    broken = getattr(module, "__course_broken__", None)
    in_broken_cells = [name for name in dict.fromkeys(found) if isinstance(broken, dict) and name in broken]
    if in_broken_cells:
        return f"{message}\n`{in_broken_cells[0]}` is not defined because {broken[in_broken_cells[0]]}"
    try:
        names = exploration_names(*module.__dict__["__course_tree__"]) if found else set()
    except Exception:  # not set by load_module, or replaced by the learner's file
        return message
    unexplained = [name for name in dict.fromkeys(found) if name in names]
    if not unexplained:
        return message
    listed = ", ".join(f"`{name}`" for name in unexplained)
    return (f"{message}\n{listed} is defined in your file only by exploration code (an `if MAIN:` cell, a loop, a "
            "bare call), which grading never runs: pass it to the function as a parameter, or define it at the top "
            "level of the file (a constant, an import or a helper function).")


def _globals_used_by_definitions(tree: ast.Module, kept: list[bool], source: str | None) -> set[str]:
    """Global names referenced inside the kept top-level functions and classes (nested scopes included)."""
    names: set[str] = set()
    for node, keep in zip(tree.body, kept):  # decorators, defaults and annotations run at definition time
        if keep and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for part in [*node.decorator_list, *getattr(node, "bases", []), *_definition_time_parts(node)]:
                names |= _loaded_names(part)
    try:
        table = symtable.symtable(ast.unparse(tree) if source is None else source, "<learner>", "exec")
    except SyntaxError:
        return names
    wanted = {node.name for node, keep in zip(tree.body, kept) if keep
              and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for child in table.get_children():
        if child.get_name() in wanted:
            names |= _scope_globals(child)
    return names


def _scope_globals(table: symtable.SymbolTable) -> set[str]:
    names = {symbol.get_name() for symbol in table.get_symbols()
             if symbol.is_referenced() and (symbol.is_global() or (symbol.is_free() and table.get_type() == "class"))}
    for child in table.get_children():
        names |= _scope_globals(child)
    return names


def _definition_time_parts(node: ast.AST) -> list[ast.AST]:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return []
    arguments = node.args
    parts: list[ast.AST] = [*arguments.defaults, *[d for d in arguments.kw_defaults if d is not None]]
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
    parts += [arg.annotation for arg in every if arg is not None and arg.annotation is not None]
    if node.returns is not None:
        parts.append(node.returns)
    return parts


def _may_define_for_functions(node: ast.stmt) -> bool:
    """Top-level statements that may run when a function needs a name they define: assignments, and `if`/`try`
    blocks that are not exploration (`if MAIN:`, `if __name__ == "__main__":`)."""
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Try)):
        return True
    if isinstance(node, ast.If):
        tested = _loaded_names(node.test)
        return not ({"MAIN", "__name__"} & tested)
    return False


def _defined_names(node: ast.stmt) -> set[str]:
    names = set()
    for part in ast.walk(node):
        if isinstance(part, ast.Name) and isinstance(part.ctx, ast.Store):
            names.add(part.id)
        elif isinstance(part, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(part.name)
        elif isinstance(part, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).partition(".")[0] for alias in part.names}
    return names


def _loaded_names(node: ast.AST) -> set[str]:
    return {part.id for part in ast.walk(node) if isinstance(part, ast.Name) and isinstance(part.ctx, ast.Load)}


class CompiledLearner:
    """A learner's file read, parsed, reduced to its definitions and compiled (see the module docstring); nothing of
    it has run. A zygote compiles a .py file once for the exercises it grades (`checks.isolation.zygote`)."""

    def __init__(self, path: Path) -> None:
        path = Path(path).resolve()
        source = read_source(path)
        self.path, self.filename, self.source, self.broken = path, str(path), source, {}
        try:
            self.tree = ast.parse(source, filename=self.filename)
        except SyntaxError as error:
            self.source, self.broken = _without_broken_cells(path, source, error)
            self.tree = ast.parse(self.source, filename=self.filename)
        self.kept = definitions_only(self.tree, self.source)
        self.code = compile(self.kept, self.filename, "exec")


def load_module(path: Path, compiled: CompiledLearner | None = None) -> ModuleType:
    """Import `path` under a private module name, executing only its definitions (see the module docstring);
    `compiled`, when given, is that file already compiled."""
    compiled = compiled if compiled is not None else CompiledLearner(path)
    path, filename = compiled.path, compiled.filename
    if path.suffix == ".ipynb":
        linecache.cache[filename] = (len(compiled.source), None, compiled.source.splitlines(True), filename)
    name = f"_course_learner_{path.stem}_{hashlib.sha1(filename.encode()).hexdigest()[:8]}"
    module = ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    module.__course_tree__ = (compiled.tree, compiled.kept)  # type: ignore[attr-defined]  (for explain_name_error)
    module.__course_broken__ = compiled.broken  # type: ignore[attr-defined]  (for missing_function_message)
    try:
        exec(compiled.code, module.__dict__)
    except Exception as error:
        del sys.modules[name]
        raise LearnerModuleError(f"importing {path} failed: {type(error).__name__}: {error}") from error
    return module


_CELL_MARKER = re.compile(r"^# %%")
_DEFINED_FUNCTION = re.compile(r"^(?:async\s+)?def\s+(\w+)", re.MULTILINE)


def _without_broken_cells(path: Path, source: str, error: SyntaxError) -> tuple[str, dict[str, str]]:
    """`source` with every cell (`# %%` block of a notebook or percent-format module) that does not parse blanked
    out, line numbers kept; and, per function those cells define, the message that says where the error is. Raises
    LearnerModuleError when the file has no cells, or the error is not within one cell."""
    lines = source.splitlines(keepends=True)
    starts = [index for index, line in enumerate(lines) if _CELL_MARKER.match(line)]
    broken: dict[str, str] = {}
    blanked = 0
    kept = list(lines)
    for number, (start, end) in enumerate(zip(starts, starts[1:] + [len(lines)]), start=1):
        cell = "".join(lines[start + 1:end])
        try:
            ast.parse(cell)
        except SyntaxError as cell_error:
            names = _DEFINED_FUNCTION.findall(cell)
            where = _syntax_error_text(cell_error, cell)
            defines = f" (it defines {', '.join(names)})" if names else ""
            line = "" if path.suffix == ".ipynb" else f", line {start + 1 + (cell_error.lineno or 1)} of the file"
            message = (f"{path}: cell {number}{defines} has a syntax error on line {cell_error.lineno} of the "
                       f"cell{line}: {cell_error.msg}{where}")
            for name in names:
                broken[name] = message
            blanked += 1
            kept[start + 1:end] = ["\n"] * (end - start - 1)
    repaired = "".join(kept)
    try:
        if not blanked:
            raise SyntaxError
        ast.parse(repaired)
    except SyntaxError:
        where = _syntax_error_text(error, source)
        raise LearnerModuleError(f"{path} has a syntax error on line {error.lineno}: {error.msg}{where}") from error
    return repaired, broken


def _syntax_error_text(error: SyntaxError, source: str) -> str:
    """The offending line, from `source` (the error's own `text` may come from the file on disk: for a notebook,
    a line of its JSON)."""
    lines = source.splitlines()
    if error.lineno is None or not 1 <= error.lineno <= len(lines) or not lines[error.lineno - 1].strip():
        return ""
    return f"\n    {lines[error.lineno - 1].strip()}"


def missing_function_message(module: ModuleType, name: str) -> str:
    """Why the learner's module has no function `name`: a cell of it that does not parse, or it is not there."""
    broken = getattr(module, "__course_broken__", None)
    if isinstance(broken, dict) and isinstance(broken.get(name), str):
        return (f"{broken[name]}\nThis exercise is not graded until that cell parses; the other cells' exercises are "
                "graded.")
    return f"{module.__file__} has no function {name!r}: did you rename or delete it?"


def _kept(node: ast.stmt, is_first: bool = False) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if is_first and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return isinstance(node.value.value, str)  # the module docstring
    if isinstance(node, ast.Assign):
        return _calls_nothing(node.value)
    if isinstance(node, ast.AnnAssign):
        return node.value is None or _calls_nothing(node.value)
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        return all(_kept(stmt) for stmt in node.body + node.orelse)
    if isinstance(node, ast.Try):
        blocks = [node.body, node.orelse, node.finalbody, *[handler.body for handler in node.handlers]]
        return all(_kept(stmt) or isinstance(stmt, ast.Pass) for block in blocks for stmt in block)
    return False


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _calls_nothing(expression: ast.expr) -> bool:
    for node in ast.walk(expression):
        if isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
            return False
        if isinstance(node, ast.Call):
            callee = node.func
            callee_name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", None)
            if callee_name not in _HARMLESS_CALLS:
                return False
    return True


def written_exercises(path: Path, names: list[str]) -> set[str]:
    """Which of the functions `names` are defined in the learner's file with a body other than the stub's
    `raise NotImplementedError(...)` (an unreadable file has none). A later `def` of a name wins, as when it runs."""
    try:
        tree = ast.parse(read_source(path))
    except (LearnerModuleError, SyntaxError):
        return set()
    written = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
            body = [stmt for stmt in node.body if not _is_docstring(stmt)]
            if len(body) == 1 and _raises_not_implemented(body[0]):
                written.discard(node.name)
            else:
                written.add(node.name)
    return written


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _raises_not_implemented(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.Raise) or stmt.exc is None:
        return False
    exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def wrong_day_error(module: ModuleType, day: "Day", course: "Course") -> LearnerModuleError | None:
    """An error when the learner's module defines none of `day`'s exercises but some of another day's."""
    if any(callable(getattr(module, check.name, None)) for check in day.checks):
        return None
    for other in course.days.values():
        found = [check.name for check in other.checks if callable(getattr(module, check.name, None))]
        if other.number != day.number and found:
            return LearnerModuleError(
                f"{module.__file__}: this file looks like day {other.number}'s file (it defines "
                f"{', '.join(found[:3])}), not day {day.number}'s, which has "
                f"{', '.join(check.name for check in day.checks[:3])}, ...: grade it with --day {other.number}, or "
                f"give day {day.number}'s file")
    return None
