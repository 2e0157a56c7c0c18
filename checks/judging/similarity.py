"""Which of a submission's exercises are the reference solution itself: the same normalised syntax tree (docstring,
annotations and comments dropped, the function's own parameter and local names renamed in order of appearance).
Read from both files' text; nothing is run. `python -m checks grade` flags them in the report for the instructor to
look at: a flag is not a verdict (a one-line exercise has few ways to be written)."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

from checks.course import Day


def normalised(function: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    """The function's body as a canonical string (see the module docstring)."""
    function = ast.parse(ast.unparse(function)).body[0]  # a private copy
    assert isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    own = [arg.arg for arg in ast.walk(function.args) if isinstance(arg, ast.arg)]
    module = ast.Module(body=body, type_ignores=[])
    for node in ast.walk(module):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in own:
            own.append(node.id)
        if isinstance(node, ast.arg) and node.arg not in own:
            own.append(node.arg)
    names = {name: f"_v{index}" for index, name in enumerate(own) if not hasattr(builtins, name)}
    for node in ast.walk(module):
        if isinstance(node, ast.Name) and node.id in names:
            node.id = names[node.id]
        elif isinstance(node, ast.arg):
            node.arg, node.annotation = names.get(node.arg, node.arg), None
        elif isinstance(node, ast.AnnAssign):
            node.annotation = ast.Constant(None)
    return ast.dump(module, annotate_fields=False, include_attributes=False)


def _functions(source: str) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return {}
    return {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def identical_to_solution(day: Day, learner: Path) -> list[str]:
    """The exercises of `day` that `learner` (a .py or .ipynb file) writes exactly as the reference solution does
    (empty when either file cannot be read)."""
    from checks.pipeline.learner import LearnerModuleError, read_source

    try:
        mine = _functions(read_source(learner))
        reference = _functions(day.solution_path.read_text(encoding="utf-8"))
    except (LearnerModuleError, OSError, UnicodeDecodeError):
        return []
    return [check.name for check in day.checks if check.name in mine and check.name in reference
            and normalised(mine[check.name]) == normalised(reference[check.name])]
