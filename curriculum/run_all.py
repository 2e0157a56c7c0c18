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


def keep_going_past_stubs() -> bool:
    """Install the guard in the running IPython kernel; returns whether there was one to install it in."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    if not any(isinstance(t, _GuardExplorations) for t in shell.ast_transformers):
        shell.ast_transformers.append(_GuardExplorations())
    shell.user_ns["_course_exploration_stopped"] = exploration_stopped
    return True


def exploration_stopped(error: BaseException) -> None:
    """Called by a guarded block that raised `error`: print one line if it is an unwritten exercise (or a name that
    such an exercise left undefined); raise it again otherwise."""
    if isinstance(error, NotImplementedError):
        exercise = unwritten_exercise(error)
        if exercise is not None:
            if exercise not in _stopped:
                _stopped.append(exercise)
            print(f"[skipped the rest of this cell] it needs the exercise {exercise}, which you have not written yet: "
                  f"write it, then run check({exercise})")
            return
    if isinstance(error, NameError) and _stopped:
        print(f"[skipped the rest of this cell] it needs {getattr(error, 'name', None) or error}, which an earlier "
              f"cell did not get to define: write {', '.join(_stopped)} first")
        return
    if _stopped:  # e.g. a KeyError on a dict that a stopped cell only half filled
        print(f"[skipped the rest of this cell] {type(error).__name__}: {error}, most likely because an earlier cell "
              f"stopped at an unwritten exercise: write {', '.join(_stopped)} first")
        return
    raise error


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
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "MAIN":
                handler = ast.ExceptHandler(
                    type=ast.Name("Exception", ast.Load()),
                    name="_course_error",
                    body=[ast.Expr(ast.Call(ast.Name("_course_exploration_stopped", ast.Load()),
                                            [ast.Name("_course_error", ast.Load())], []))])
                guarded = ast.Try(body=node.body, handlers=[handler], orelse=[], finalbody=[])
                ast.copy_location(guarded, node.body[0])
                node.body = [guarded]
        return ast.fix_missing_locations(module)
