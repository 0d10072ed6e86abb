"""n3f's modules form layers: no import cycle, and no lower layer imports a higher one.

Imports are read from the source (``ast``), both module-level ones and the
lazy ones inside functions, so a dependency is caught even where it is
deferred. Module-level imports must also form no cycle (a cycle breaks on
import order); lazy imports inside functions are how the command line stays
fast, and they still have to respect the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "n3f"

# lowest first; a module may import its own layer and the ones below
LAYERS: list[tuple[str, ...]] = [
    ("n3f", "n3f.errors", "n3f.settings", "n3f.atomic", "n3f.device", "n3f.metrics"),  # n3f: __version__ only
    ("n3f.scene_data",),
    ("n3f.io", "n3f.synthetic"),
    ("n3f.scene",),
    ("n3f.features", "n3f.teachers", "n3f.fields", "n3f.render", "n3f.fusion.volume"),
    ("n3f.train", "n3f.fusion"),
    ("n3f.tasks",),
    ("n3f.reporting",),
    ("n3f.config_check", "n3f.config_docs", "n3f.commands", "n3f.cli", "n3f.__main__"),
]


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def layer_of(module: str) -> int:
    best, depth = None, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            within = module == prefix or (prefix != "n3f" and module.startswith(prefix + "."))
            if within and prefix.count(".") > depth:
                best, depth = i, prefix.count(".")
    assert best is not None, f"{module} is in no layer of tests/test_layers.py: add it"
    return best


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported n3f module, at module level?) for every import in the file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` blocks are not imports at run time
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            top -= {id(n) for n in ast.walk(node)}
            node.body = []
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name == "n3f" or name.startswith("n3f."):
                out.append((name, id(node) in top))
    return out


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def resolve(name: str) -> str | None:
    """The module a dotted import name refers to (``n3f.x.y`` may be a function ``y`` of ``n3f.x``)."""
    while name and name not in MODULES:
        name = name.rsplit(".", 1)[0] if "." in name else ""
    return name or None


def test_no_lower_layer_imports_a_higher_one():
    wrong = []
    for module, path in MODULES.items():
        for name, _ in imports(path):
            target = resolve(name)
            if target and layer_of(target) > layer_of(module):
                wrong.append(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_module_level_imports_have_no_cycle():
    graph = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for name, at_top in imports(path):
            target = resolve(name)
            if at_top and target and target != module and not module.startswith(target + "."):
                # a package's __init__ is imported before its submodules: `n3f.x.y` importing
                # `n3f.x` is not a cycle edge
                graph[module].add(target)
    seen, stack, cycles = set(), [], []

    def visit(node: str) -> None:
        if node in stack:
            cycles.append(stack[stack.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        stack.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        stack.pop()

    for module in sorted(graph):
        visit(module)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", ["n3f.config_check", "n3f.train.config", "n3f.cli"])
def test_light_modules_do_not_import_torch(module):
    """The Snakefile (dry run) and ``n3f --help`` import these: they must stay fast."""
    import subprocess
    import sys

    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr
