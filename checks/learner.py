"""Import a learner's day module (a .py file or a .ipynb notebook) without running any of its experiments.

The rule: only these top-level statements of the module are executed, in order; everything else is skipped.
- the module docstring, `import` and `from ... import` statements;
- `def`, `async def` and `class` statements (with their decorators);
- plain assignments (`X = ...`, `X: T = ...`) whose right-hand side calls nothing but a few harmless functions
  (`torch.device`, `torch.cuda.is_available`, `TypeVar`, `NewType`, `Path`): constants, type aliases such as
  `Float[Tensor, "batch pos"]`, and `MAIN = __name__ == "__main__"`;
- `try` blocks made only of such statements (e.g. an import with a fallback), and `if TYPE_CHECKING:` blocks.
Skipped: bare expressions and calls, `if`/`for`/`while`/`with` blocks (so `if MAIN:` cells, and unguarded
exploration code too), augmented assignments, assignments whose value calls something (`model = load_model(...)`).
So grading never runs a learner's experiment, whether or not they kept the `if MAIN:` guards. An exercise must take
everything it needs as parameters, which the course's exercises do.

A notebook is converted to a script with jupytext first; its source is registered with `linecache` so tracebacks
show the learner's lines.
"""

from __future__ import annotations

import ast
import hashlib
import linecache
import sys
from pathlib import Path
from types import ModuleType

_HARMLESS_CALLS = {"device", "is_available", "TypeVar", "NewType", "Path"}


class LearnerModuleError(Exception):
    """The learner's file cannot be read or compiled (e.g. a syntax error); every exercise of the day fails."""


def read_source(path: Path) -> str:
    """The Python source of a .py file, or of a .ipynb notebook converted with jupytext (percent format)."""
    if not path.is_file():
        raise LearnerModuleError(f"no such file: {path}")
    if path.suffix == ".ipynb":
        import jupytext

        try:
            notebook = jupytext.read(path)
        except Exception as error:  # nbformat/json errors come in many types
            raise LearnerModuleError(f"cannot read the notebook {path}: {error}") from error
        return jupytext.writes(notebook, fmt="py:percent")
    if path.suffix != ".py":
        raise LearnerModuleError(f"expected a .py module or a .ipynb notebook, got {path}")
    return path.read_text(encoding="utf-8")


def definitions_only(tree: ast.Module) -> ast.Module:
    """The module with only the statements the rule above keeps."""
    body = [node for index, node in enumerate(tree.body) if _kept(node, is_first=index == 0)]
    return ast.Module(body=body, type_ignores=tree.type_ignores)


def load_module(path: Path) -> ModuleType:
    """Import `path` under a private module name, executing only its definitions (see the module docstring)."""
    path = Path(path).resolve()
    source = read_source(path)
    filename = str(path)
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as error:
        raise LearnerModuleError(f"{path} has a syntax error on line {error.lineno}: {error.msg}") from error
    if path.suffix == ".ipynb":
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    name = f"_course_learner_{path.stem}_{hashlib.sha1(filename.encode()).hexdigest()[:8]}"
    module = ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    code = compile(definitions_only(tree), filename, "exec")
    try:
        exec(code, module.__dict__)
    except Exception as error:
        del sys.modules[name]
        raise LearnerModuleError(f"importing {path} failed: {type(error).__name__}: {error}") from error
    return module


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
