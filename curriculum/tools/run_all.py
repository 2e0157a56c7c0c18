"""Let "Run All" go past the exercises a learner has not written yet (the learner notebook's second cell calls this).

`keep_going_past_stubs()` adds an AST transformer to the running IPython kernel. In every cell run afterwards, the
body of each top-level `if MAIN:` block (the exploration code) runs under a guard: when it reaches an exercise that
still raises the stub's NotImplementedError, it prints one line naming the exercise to write and the cell ends
without an error, so "Run All" carries on and the cells that need no exercise draw their figures. A later cell that
needs a variable which such a cell never got to define says so in one line too, rather than failing on a NameError
(or on another error, once an exercise has stopped a cell: most likely a follow-on). Until an exercise has stopped
a cell, every other error is raised as usual. Grading never runs these blocks, and outside IPython this does nothing.
"""

from __future__ import annotations

import ast
import re
import traceback

_STUB_MESSAGE = re.compile(r"^write (\w+), then run check\(\1\)$")
_stopped: list[str] = []  # exercises that stopped an exploration block in this kernel, in order
_left_undefined: dict[str, list[str]] = {}  # a name a stopped block did not get to define -> the exercises to write


def keep_going_past_stubs() -> None:
    """Install the guard in the running IPython kernel (nothing outside IPython). Returns None, so that the cell
    calling it shows nothing."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    if not any(isinstance(t, _GuardExplorations) for t in shell.ast_transformers):
        shell.ast_transformers.append(_GuardExplorations())
    shell.user_ns["_course_exploration_stopped"] = exploration_stopped


def exploration_stopped(error: BaseException, defines: tuple[str, ...] = ()) -> None:
    """Called by a guarded block that raised `error` (`defines`: the names the block assigns): print one line if it
    is an unwritten exercise (or a name that such an exercise left undefined); raise it again otherwise."""
    if isinstance(error, NotImplementedError):
        exercise = unwritten_exercise(error)
        if exercise is not None:
            if exercise not in _stopped:
                _stopped.append(exercise)
            _leave_undefined(defines, [exercise])
            print(f"[skipped the rest of this cell] it needs the exercise {exercise}, which you have not written yet: "
                  f"write it, then run check({exercise})")
            return
    if isinstance(error, NameError) and _stopped:
        name = getattr(error, "name", None)
        needed = _left_undefined.get(name, _stopped) if name else _stopped
        _leave_undefined(defines, needed)
        print(f"[skipped the rest of this cell] it needs {name or error}, which an earlier cell did not get to "
              f"define: write {', '.join(needed)} first")
        return
    if _stopped:  # e.g. a KeyError on a dict that a stopped cell only half filled
        _leave_undefined(defines, _stopped)
        print(f"[skipped the rest of this cell] {type(error).__name__}: {error}, most likely because an earlier cell "
              f"stopped at an unwritten exercise: write {', '.join(_stopped)} first")
        return
    raise error


def _leave_undefined(names: tuple[str, ...], exercises: list[str]) -> None:
    for name in names:
        _left_undefined[name] = list(dict.fromkeys([*_left_undefined.get(name, []), *exercises]))


def unwritten_exercise(error: NotImplementedError) -> str | None:
    """The exercise whose stub raised `error` (the builder's stub message, or the function that raised it)."""
    match = _STUB_MESSAGE.match(str(error))
    if match:
        return match.group(1)
    frames = traceback.extract_tb(error.__traceback__)
    if frames and (frames[-1].line or "").strip().startswith("raise NotImplementedError"):
        return frames[-1].name
    return None


class _GuardExplorations(ast.NodeTransformer):
    """Wraps the body of each top-level `if MAIN:` in try/except Exception calling `_course_exploration_stopped`
    (which raises again whatever is not an unwritten exercise or its follow-on)."""

    def visit_Module(self, module: ast.Module) -> ast.Module:
        for node in module.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in _stopped:
                _stopped.remove(node.name)  # the learner ran the exercise's cell again: their errors are theirs
                for name, exercises in list(_left_undefined.items()):
                    if node.name in exercises:
                        exercises.remove(node.name)
                    if not exercises:
                        del _left_undefined[name]
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "MAIN":
                handler = ast.ExceptHandler(
                    type=ast.Name("Exception", ast.Load()),
                    name="_course_error",
                    body=[ast.Expr(ast.Call(ast.Name("_course_exploration_stopped", ast.Load()),
                                            [ast.Name("_course_error", ast.Load()),
                                             ast.Constant(_assigned_names(node.body))], []))])
                guarded = ast.Try(body=node.body, handlers=[handler], orelse=[], finalbody=[])
                ast.copy_location(guarded, node.body[0])
                node.body = [guarded]
        return ast.fix_missing_locations(module)


def _assigned_names(body: list[ast.stmt]) -> tuple[str, ...]:
    """The names a block of statements assigns, defines or imports (not inside functions it defines)."""
    names: dict[str, None] = {}
    pending: list[ast.AST] = list(body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names[node.id] = None
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = None
            continue
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(dict.fromkeys((alias.asname or alias.name).partition(".")[0] for alias in node.names))
        elif isinstance(node, ast.Lambda):
            continue
        pending.extend(ast.iter_child_nodes(node))
    return tuple(names)
