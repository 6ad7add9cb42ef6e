"""``_core.pyi`` declares exactly what the compiled module exports (a new binding without a stub,
or a stub left behind by a removed binding, fails here)."""
import ast
import pathlib

import dropkit
from dropkit import _core


def test_stub_declares_every_export_and_nothing_else():
    stub = pathlib.Path(dropkit.__file__).with_name("_core.pyi")
    tree = ast.parse(stub.read_text())
    declared = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared.add(node.target.id)
    exported = {n for n in dir(_core) if not (n.startswith("__") and n.endswith("__"))} | {"__version__"}
    assert declared == exported, (sorted(exported - declared), sorted(declared - exported))
