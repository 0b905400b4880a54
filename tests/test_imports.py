"""The package's import graph has no cycle, and the pure logic loads no torch."""
import ast
import subprocess
import sys
from pathlib import Path

import alife_nas

PACKAGE = Path(alife_nas.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every alife_nas module imported anywhere in the file (also inside functions), but not
    under ``if TYPE_CHECKING``, which never runs."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import module`
    return {name for name in found if name in modules}


def test_no_import_cycle_inside_the_package():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports_of(path, set(files)) - {name} for name, path in files.items()}
    done, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in done:
            return
        stack.append(node)
        for other in sorted(graph[node]):
            visit(other)
        stack.pop()
        done.add(node)

    for name in sorted(graph):
        visit(name)
    assert "alife_nas.search" in graph and graph["alife_nas.strategies.neuralfinder"]


def test_pure_logic_and_the_public_names_load_no_torch():
    pure = ["alife_nas", "alife_nas.genome", "alife_nas.operators", "alife_nas.lattice", "alife_nas.evolution",
            "alife_nas.strategies", "alife_nas.config", "alife_nas.settings", "alife_nas.shapes", "alife_nas.store",
            "alife_nas.search", "alife_nas.export", "alife_nas.retraining"]
    code = f"import sys\nfor m in {pure!r}: __import__(m)\nprint('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
