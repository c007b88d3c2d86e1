"""dolite's module-level import graph has no cycles, and the HTTP side needs no APSW.

Only imports that run when a module is imported count (module body, including top-level
``if``/``try`` blocks, but not ``if TYPE_CHECKING:`` and not imports inside functions).
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dolite"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def executed_imports(body: list[ast.stmt]):
    """The Import/ImportFrom nodes that run when a module body runs."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            yield from executed_imports(node.body)
            yield from executed_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from executed_imports(block)
        elif isinstance(node, ast.ClassDef):
            yield from executed_imports(node.body)


def imported_modules(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]):
    """The dolite modules one import statement loads (``from X import Y`` loads X.Y when it is a module)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    targets = {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {t for t in targets if t in known}


def all_imports(tree: ast.Module):
    """Every import statement, deferred ones (inside functions) included."""
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def import_graph(deferred: bool = False) -> dict[str, set[str]]:
    """Module -> the dolite modules its body imports (``deferred``: or any of its functions)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {module: set() for module in files}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in all_imports(tree) if deferred else executed_imports(tree.body):
            for target in imported_modules(module, path.name == "__init__.py", node, set(files)):
                if target != module and not module.startswith(target + "."):  # a package's own parents run first anyway
                    graph[module].add(target)
    return graph


def test_the_graph_sees_known_edges():
    graph = import_graph()
    assert "dolite.remote.client" in graph["dolite.remote.httpdbapi"]
    assert "dolite.errors" in graph["dolite.server.errors"]


def test_no_import_cycles():
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as exc:
        pytest.fail("import cycle: " + " -> ".join(exc.args[1]))


_ELSEWHERE = ()
_KNOWN_EDGES: set[tuple[str, str]] = set()


def test_no_cycles_through_deferred_imports_either():
    """A function-level import that closes a cycle only hides it (outside pages/ and sql/)."""
    graph = import_graph(deferred=True)
    graph = {m: {t for t in targets if not t.startswith(_ELSEWHERE) and (m, t) not in _KNOWN_EDGES}
             for m, targets in graph.items() if not m.startswith(_ELSEWHERE)}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail("import cycle: " + " -> ".join(exc.args[1]))


def test_remote_imports_without_apsw(tmp_path):
    """``dolite.remote`` (client, HTTP DB-API driver, wire) works where APSW is not installed."""
    (tmp_path / "apsw.py").write_text("raise ImportError('APSW is not installed here')\n")
    script = textwrap.dedent("""
        import dolite, dolite.remote.client, dolite.remote.httpdbapi, dolite.remote.wire
        import sys
        assert "apsw" not in sys.modules or sys.modules["apsw"] is None
        from dolite.remote.httpdbapi import connect
        try:
            import apsw
        except ImportError:
            pass
        else:
            raise SystemExit("the fake apsw was not used")
        print("ok")
    """)
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("module", ["dolite.remote.client", "dolite.errors"])
def test_light_modules_do_not_import_the_server(module):
    graph, seen, todo = import_graph(), set(), [module]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    assert not any(m.startswith("dolite.server") for m in seen)
