"""The README's Python examples run, in order, as one script."""

from __future__ import annotations

import multiprocessing as mp
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples write files (a checkpoint) where they run
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert len(namespace["rb"]) > 0
    assert (tmp_path / "ckpt.pt").is_file()
    assert not mp.active_children()
