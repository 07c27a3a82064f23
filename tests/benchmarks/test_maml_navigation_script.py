"""benchmarks/maml_navigation.py with a tiny budget: the table's two rows with a return per
number of inner steps, and a line per seed (nothing is asserted about the returns)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from streamrl.cli import load_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_prints_both_methods_before_and_after_adaptation(tmp_path, monkeypatch, capsys):
    bench = load_pipeline(ROOT / "benchmarks" / "maml_navigation.py")
    monkeypatch.setattr(sys, "argv", [
        "maml_navigation.py", "--iterations", "2", "--seeds", "0", "--eval-tasks", "2",
        "--eval-steps", "2", "--meta-batch-size", "2", "--episodes-per-task", "3",
        "--max-steps", "10", "--root", str(tmp_path)])
    bench.main()  # in this process: no interpreter start-up (most of the test's time)
    out = capsys.readouterr().out
    assert "| method | 0 steps | 1 steps | 2 steps |" in out, out
    for name in (r"MAML \(1 inner step\)", r"pretrained \(no inner step\)"):
        assert re.search(rf"^\| {name} \| -?[\d.]+ \| -?[\d.]+ \| -?[\d.]+ \|$", out, re.M), out
        assert re.search(rf"^  {name}, seed 0: -?[\d.]+ -> -?[\d.]+ -> -?[\d.]+$", out, re.M), out
    assert (tmp_path / "inner0-seed0" / "metrics.csv").is_file()
