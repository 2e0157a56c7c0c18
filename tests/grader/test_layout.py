"""The course's layout: no import circle among its modules, and one function per name where a name means one thing."""

from __future__ import annotations

import ast
from pathlib import Path

from curriculum.tools.paths import COURSE_ROOT

PACKAGES = ("checks", "curriculum", "notebooks", "solutions")


def module_files(root: Path = COURSE_ROOT) -> dict[str, Path]:
    """Every module of the course's packages, by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import statements under `if TYPE_CHECKING:` (never run, so never part of an import circle)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return skipped


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the course's modules it imports, anywhere in its body (a function's lazy import counts too)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_only(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets |= {_known(alias.name, modules) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    targets.add(_known(f"{base}.{alias.name}", modules) or _known(base, modules))
        graph[name] = {target for target in targets if target and target != name}
    return graph


def _known(dotted: str, modules: dict[str, Path]) -> str:
    """The longest prefix of `dotted` that is one of the course's modules, or ""."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_among_the_course_modules():
    modules = module_files()
    graph = import_graph(modules)
    assert "checks.isolation.supervisor" in graph and graph["checks.frontends.session"], "the graph was not built"
    assert cycles(graph) == []


def test_one_function_called_grade_in_checks():
    """`checks.grade(fn)` is the only `grade`: the session, the supervisor and the in-process pipeline name their
    steps by what they do."""
    found = [f"{path.relative_to(COURSE_ROOT)}:{node.lineno}" for path in sorted((COURSE_ROOT / "checks").rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "grade"]
    assert found == ["checks/__init__.py:27"] or (len(found) == 1 and found[0].startswith("checks/__init__.py")), found


def test_curriculum_top_level_holds_only_the_generated_day_modules():
    """`curriculum/` beside the day modules holds only the package's entry points and subpackages: the course's
    library (`curriculum.library`), the learner's tools (`curriculum.tools`), the zoo and the data generators. Every
    other module there is a day module the builder generated from `solutions/`."""
    folder = COURSE_ROOT / "curriculum"
    days = {path.name for path in (COURSE_ROOT / "solutions").glob("day*_*.py")}
    assert days, "no day in solutions/"
    misplaced = []
    for path in sorted(folder.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name == "__main__.py":
            continue
        if path.name == "__init__.py":
            body = ast.parse(text).body
            if any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body):
                misplaced.append(f"{path.name} (code in the package's __init__)")
            continue
        if path.name not in days or f"# GENERATED by `python -m notebooks build` from solutions/{path.name}" not in text:
            misplaced.append(path.name)
    assert misplaced == [], f"library code beside the generated day modules: {misplaced}"
    packages = {path.name for path in folder.iterdir() if (path / "__init__.py").is_file()}
    assert packages == {"data", "library", "models", "tools"}, packages
