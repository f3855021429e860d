"""The docs keep their promises: every test GUARANTEES.md names exists."""

from __future__ import annotations

import ast
import re

from tests.helpers import REPO


def _tests() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (REPO / "tests").glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        found[path.name] = names
    return found


def test_every_test_named_in_guarantees_exists() -> None:
    text = (REPO / "docs" / "GUARANTEES.md").read_text()
    tests = _tests()
    refs = re.findall(r"`?(\w+\.py)(?:::(\w+))?(?:::(\w+))?", text)
    named = [r for r in refs if r[0].startswith(("test_", "log_contract"))]
    assert len(named) > 30
    for file, first, second in named:
        assert file in tests, file
        for name in (first, second):
            if name:
                assert name in tests[file], f"{file}::{name}"
    for line in text.splitlines():
        if line.startswith("### "):
            section = text.split(line, 1)[1].split("\n#", 1)[0]
            assert "test_" in section, f"{line} names no test"


def test_docs_exist_and_are_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for doc in ("docs/FORMAT.md", "docs/GUARANTEES.md", "docs/PERFORMANCE.md"):
        assert (REPO / doc).exists() and doc in readme, doc
