"""The house rules of the package layout, checked on the source itself.

Every import of every first-party module counts, wherever it stands (top of the file, in a
function, under ``TYPE_CHECKING``): a lazy import still ties two files together, so it
may neither cross a forbidden direction nor close a cycle.

- ``mes_bridge`` and ``robot`` import none of ours; ``policy`` imports ``robot`` only;
  ``cell`` imports ``mes_bridge`` and ``robot``; ``cell/cli``, the composition root, may
  import ``policy`` too;
- ``cell/demo`` is never imported by ``cell/line``, ``record``, ``insight`` or ``api``;
- no two files import each other, directly or through others;
- the ``intern`` command, the ``intern run`` path and the API server load no torch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mes_bridge", "cell", "robot", "policy")

# What each top-level package may import of ours, besides itself.
ALLOWED = {
    "mes_bridge": set(),
    "robot": set(),
    "policy": {"robot"},
    "cell": {"mes_bridge", "robot"},
}
# Subpackages of cell that the simulated line (cell.demo) must stay out of.
DEMO_FREE = ("cell.line", "cell.record", "cell.insight", "cell.api")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules(root: Path) -> dict[str, Path]:
    """Every first-party module under ``root`` by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(path, root)] = path
    return found


def imported_names(path: Path, module: str) -> Iterator[str]:
    """Dotted names a file imports: ``import a.b`` gives ``a.b``; ``from a import b`` gives
    ``a.b`` (which resolves to a module when ``b`` is one, else to ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                drop = node.level - 1 if is_package else node.level
                anchor = anchor[: len(anchor) - drop] if drop else anchor
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}"


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The first-party module a dotted name lands in (its longest known prefix)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = source_modules(root)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {resolve(n, modules) for n in imported_names(path, module)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def direction_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for source, targets in sorted(graph.items()):
        top = source.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            composition_root = other == "policy" and _under(source, "cell.cli")
            if other != top and other not in ALLOWED[top] and not composition_root:
                found.append(f"{source} imports {target}: {top} may not import {other}")
            if _under(target, "cell.demo") and any(_under(source, p) for p in DEMO_FREE):
                found.append(f"{source} imports {target}: the simulated line stays out")
    return found


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_package_directions() -> None:
    assert direction_violations(import_graph(ROOT)) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph(ROOT)) == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_deliberate_violation_is_caught(tmp_path: Path) -> None:
    """The checks fail on a tree that breaks them (so a green run means something)."""
    _write(
        tmp_path,
        {
            "mes_bridge/__init__.py": "",
            "mes_bridge/a.py": "from mes_bridge import b\n",
            "mes_bridge/b.py": "def f():\n    from mes_bridge.a import x\n",
            "robot/__init__.py": "import policy.model\n",
            "policy/__init__.py": "",
            "policy/model.py": "",
            "cell/__init__.py": "",
            "cell/line/__init__.py": "from cell.demo import runner\nfrom policy import model\n",
            "cell/demo/__init__.py": "",
            "cell/demo/runner.py": "",
            "cell/cli/__init__.py": "from ..demo import runner\nfrom policy import model\n",
        },
    )
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["mes_bridge.a", "mes_bridge.b"]]
    assert direction_violations(graph) == [
        "cell.line imports cell.demo.runner: the simulated line stays out",
        "cell.line imports policy.model: cell may not import policy",
        "robot imports policy.model: robot may not import policy",
    ]


TORCH_FREE = {
    "the intern command": "import cell.cli; cell.cli.build_app()",
    "intern run": "import cell.cli.line, cell.line.orchestrator",
    "intern api serve": "import cell.api; cell.api.create_app",
    "the policy client": "import policy.client, policy.wire, policy.server",
}


@pytest.mark.parametrize("what", sorted(TORCH_FREE))
def test_paths_that_load_no_torch(what: str) -> None:
    code = f"{TORCH_FREE[what]}\nimport sys\nprint('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "False", f"{what} imports torch"
