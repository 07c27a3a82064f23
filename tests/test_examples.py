"""The examples run (on small budgets)."""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sync_vs_async_collection(capsys):
    _load("sync_vs_async_collection").main(["--frames", "2000", "--train-ms", "1"])
    out = capsys.readouterr().out
    for name in ("SyncDataCollector", "MultiSyncDataCollector(2)", "MultiaSyncDataCollector(2)"):
        assert name in out
    sync_row = next(line for line in out.splitlines() if line.startswith("SyncDataCollector"))
    assert sync_row.split()[-1] == "0"  # lockstep: never stale
    assert not mp.active_children()


def test_prioritized_replay_loader(capsys):
    _load("prioritized_replay_loader").main(["--frames", "400", "--batches", "5"])
    assert "400 transitions; 5 prioritized batches of 64" in capsys.readouterr().out


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_every_example_has_a_docstring_and_main(path):
    source = path.read_text()
    assert source.startswith('"""'), f"{path.name} needs a module docstring"
    assert "def main(" in source and '__name__ == "__main__"' in source
