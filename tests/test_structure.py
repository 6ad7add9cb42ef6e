"""The package's module structure: no import cycle between dropkit's modules (an import inside a
function counts too: it is a cycle deferred, not removed), and production modules do not import the
NumPy reference for its parameters (only ``_dispatch`` chooses it as the "numpy" backend's kernels,
and ``dask``/``variant_layers`` name its kernels for that backend)."""
import ast
import pathlib

import dropkit

ROOT = pathlib.Path(dropkit.__file__).parent


def _modules():
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(("dropkit",) + parts)
        mods[name.replace(".__init__", "")] = p
    return mods


def _imports(mods):
    graph = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg
                for _ in range(max(node.level - 1, 0)):
                    base = base.rsplit(".", 1)[0]
                tgt = (base + ("." + node.module if node.module else "")) if node.level else (node.module or "")
                for a in node.names:  # `from . import x` names the submodule x, not the package
                    sub = f"{tgt}.{a.name}"
                    if sub in mods:
                        graph[m].add(sub)
                    elif tgt in mods and tgt != "dropkit":
                        graph[m].add(tgt)
            elif isinstance(node, ast.Import):
                graph[m].update(a.name for a in node.names if a.name in mods and a.name != "dropkit")
        graph[m].discard(m)
    return graph


def _cycles(graph):
    """Every strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_between_library_modules():
    mods = _modules()
    graph = _imports(mods)
    # the package __init__ files import their children by design; a child importing its package
    # for a sibling is resolved to that sibling above
    for m in list(graph):
        if mods[m].name == "__init__.py":
            graph[m] = set()
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_parameters_never_come_from_the_reference():
    allowed = {"dropkit._dispatch", "dropkit.dask", "dropkit.variant_layers"}  # its kernels, as a backend
    mods = _modules()
    graph = _imports(mods)
    users = {m for m, deps in graph.items() if any(d.startswith("dropkit.reference") for d in deps)}
    users = {m for m in users if not m.startswith("dropkit.reference") and mods[m].name != "__init__.py"}
    assert users <= allowed | {m for m in users if m.startswith(("dropkit.bench", "dropkit.examples"))}, users


def test_no_module_uses_another_modules_private_names():
    """``other._name`` where ``other`` is one of dropkit's modules is a private name used across
    modules (dunder names excepted): every such use is a hidden interface."""
    found = []
    for p in ROOT.rglob("*.py"):
        tree = ast.parse(p.read_text())
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("dropkit")):
                aliases.update(a.asname or a.name for a in node.names)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{p.relative_to(ROOT)}: {node.value.id}.{node.attr}")
    assert found == []
