"""The documentation's code runs: the README's Python example and the docstring examples."""
from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import dropkit
from dropkit import _api

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.skipif(not README.is_file(), reason=f"README absent: {README}")
def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README has no python example"
    for code in blocks:
        namespace: dict = {}
        exec(compile(code, str(README), "exec"), namespace)  # its asserts are the checks


@pytest.mark.parametrize("module", [_api], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, raise_on_error=False, verbose=False)
    assert result.attempted > 0, f"no examples in {module.__name__}"
    assert result.failed == 0


def test_every_public_name_has_a_docstring():
    for name in dropkit.__all__:
        obj = getattr(dropkit, name)
        if callable(obj) or isinstance(obj, type):
            assert (obj.__doc__ or "").strip(), f"dropkit.{name} has no docstring"
