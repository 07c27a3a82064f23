"""docs/guarantees.md points every promise to a test: each test it names exists in tests/faults,
and every test of the fault suite's component files is named there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "guarantees.md"
FAULTS = Path(__file__).resolve().parent
# files whose tests are checks of the suite itself, not promises of the library
NOT_PROMISES = {"test_faults_leak_counter.py", Path(__file__).name}


def _tests() -> dict[str, str]:
    found = {}
    for path in sorted(FAULTS.glob("test_faults_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                found[node.name] = path.name
    return found


def test_every_test_the_doc_names_exists():
    named = set(re.findall(r"\b(test_[a-z0-9_]+)\b", DOC.read_text()))
    named -= {Path(n).stem for n in re.findall(r"(test_faults_[a-z_]+\.py)", DOC.read_text())}
    missing = sorted(named - set(_tests()))
    assert not missing, f"docs/guarantees.md names tests that do not exist: {missing}"


def test_every_promise_test_is_in_the_doc():
    text = DOC.read_text()
    absent = sorted(name for name, file in _tests().items()
                    if file not in NOT_PROMISES and name not in text)
    assert not absent, f"tests/faults tests missing from docs/guarantees.md: {absent}"
