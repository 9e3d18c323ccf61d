"""The layout's promises, checked by reading the source: no import circles in src/ (counting imports
inside functions too), and no module importing a private name from another package."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, Path]:
    out = {}
    for f in (SRC / "rewardkit").rglob("*.py"):
        name = ".".join(f.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = f
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]):
    """(imported module, imported names) of every import statement in the file, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.startswith("rewardkit"):
                yield module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("rewardkit"):
                    yield a.name, []


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for module, names in _imports(name, path, mods):
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in mods] or [module]
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def test_no_import_circles_in_src():
    graph = _graph()
    # a package's __init__ re-exporting its own submodules is not a circle through the package
    for name in graph:
        graph[name] = {d for d in graph[name] if not (d != name and name.startswith(d + ".") and SRC.joinpath(*d.split(".")).is_dir())}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def strong(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    assert not cycles, cycles


def test_no_private_name_is_imported_from_another_package():
    mods = _modules()
    found = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for module, names in _imports(name, path, mods):
            owner = module if SRC.joinpath(*module.split(".")).is_dir() else module.rpartition(".")[0]
            for n in names:
                if n.startswith("_") and not n.startswith("__") and owner != package:
                    found.append(f"{name} imports {module}.{n}")
    assert not found, found
