"""Where a day's exercises are in its single source: top-level functions in cells tagged `# %% tags=["exercise"]`.

Plain text and `ast`, nothing else imported: grading reads exercise names at start-up (`checks.course`), and the
builder (`notebooks.builder`) stubs the same functions.
"""

from __future__ import annotations

import ast
import re

CELL_MARKER = re.compile(r"^# %%")
_EXERCISE_CELL = re.compile(r"""^# %%.*\btags\s*=\s*\[[^\]]*["']exercise["']""")


def exercise_names(source: str) -> list[str]:
    """The exercises of a day source: top-level functions defined in cells tagged "exercise", in order."""
    return [node.name for node in exercise_functions(source)]


def exercise_functions(source: str) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The exercise functions' definitions in `source`, in order."""
    lines = source.splitlines()
    in_exercise = [False] * (len(lines) + 2)  # by 1-based line number
    current = False
    for number, line in enumerate(lines, start=1):
        if CELL_MARKER.match(line):
            current = bool(_EXERCISE_CELL.match(line))
        in_exercise[number] = current
    tree = ast.parse(source)
    return [node for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and in_exercise[node.lineno]]
