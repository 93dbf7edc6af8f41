"""The operator's modules stay small and say what they are for (issue 22): a newcomer reads each
module's first docstring line; no module over 400 lines, no class over 250."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "inferenceops"
MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_module_is_small_and_says_what_it_is_for(path: Path) -> None:
    source = path.read_text()
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree)
    if source.strip():
        assert docstring and docstring.splitlines()[0].strip(), "no first docstring line"
    assert len(source.splitlines()) <= 400, "over 400 lines: split it by job"
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            assert size <= 250, f"class {node.name} has {size} lines: split it by job"
