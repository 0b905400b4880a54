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
    pure = ["alife_nas", "alife_nas.contract", "alife_nas.registry", "alife_nas.genome", "alife_nas.operators",
            "alife_nas.lattice", "alife_nas.evolution", "alife_nas.executors",
            "alife_nas.strategies", "alife_nas.config", "alife_nas.settings", "alife_nas.shapes", "alife_nas.store",
            "alife_nas.search", "alife_nas.export", "alife_nas.retraining", "alife_nas.pytorch_source",
            "alife_nas.run_history", "alife_nas.imagefolder", "alife_nas.files"]
    code = f"import sys\nfor m in {pure!r}: __import__(m)\nprint('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


#: The layers of docs/architecture.md, bottom up: a module imports only from its own layer or below.
LAYERS = [
    ("search space", ["genome", "operators", "shapes", "validation", "options", "pareto", "inheritance"]),
    ("contract", ["contract", "registry"]),
    ("method", ["lattice", "evolution"]),
    ("strategies", ["strategies"]),
    ("configuration", ["settings", "config", "feasibility"]),
    ("run store", ["store", "files"]),
    ("training", ["dataset_error", "imagefolder", "data", "model", "training", "retraining"]),
    ("executors", ["executors"]),
    ("search", ["evaluation", "search"]),
    ("output", ["pytorch_source", "export", "model_export", "compare", "run_history", "visualize",
                "tensorboard_log", "workflows", "report", "serve"]),
    ("command line", ["cli", "__main__"]),
]


def top_names(path: Path) -> set[str]:
    """The names a file imports from the package itself (``from alife_nas import ...``)."""
    return {a.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ImportFrom)
            and node.module == "alife_nas" and node.level == 0 for a in node.names}


def layer_of(module: str) -> int:
    """The layer index of ``alife_nas.X[.Y]`` (the package itself sits on top: it re-exports)."""
    parts = module.split(".")
    if len(parts) == 1:
        return len(LAYERS)
    for index, (_, names) in enumerate(LAYERS):
        if parts[1] in names:
            return index
    raise AssertionError(f"{module} is in no layer of docs/architecture.md: add it to the table and to LAYERS")


def test_every_import_goes_down_the_layers_of_the_architecture():
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    upward = []
    for name, path in sorted(files.items()):
        for other in sorted(imports_of(path, set(files)) - {name}):
            if other == "alife_nas" and top_names(path) <= {"__version__"} | {m.split(".")[-1] for m in files}:
                continue  # `from alife_nas import __version__` or a submodule: not the package's re-exports
            if layer_of(other) > layer_of(name):
                upward.append(f"{name} ({LAYERS[layer_of(name)][0]}) imports {other} "
                              f"({LAYERS[layer_of(other)][0] if layer_of(other) < len(LAYERS) else 'top'})")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_the_architecture_doc_names_every_module_in_its_layer():
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    rows = {line.split("|")[1].strip(): line.split("|")[2] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| layer") and line.count("|") >= 4}
    for layer, names in LAYERS:
        assert layer in rows, f"docs/architecture.md has no row for the {layer} layer"
        for name in names:
            if name in ("__main__", "workflows") and f"`{name}" not in rows[layer]:
                continue  # optional entries
            shown = f"`{name}/`" if (PACKAGE / name).is_dir() else f"`{name}`"
            assert shown in rows[layer], f"docs/architecture.md: {shown} is not in the {layer} row"
