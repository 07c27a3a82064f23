"""benchmarks/multitask_sac.py with a tiny budget: a row per task with both returns, and the
mean row (nothing is asserted about the returns)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from streamrl.cli import load_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_prints_a_row_per_task_and_the_mean(tmp_path, monkeypatch, capsys):
    bench = load_pipeline(ROOT / "benchmarks" / "multitask_sac.py")
    monkeypatch.setattr(sys, "argv", [
        "multitask_sac.py", "--frames", "800", "--num-tasks", "2", "--seeds", "0",
        "--hidden", "8", "--root", str(tmp_path)])
    bench.main()  # in this process: no interpreter start-up (a third of the test's time)
    out = capsys.readouterr().out
    for task in (0, 1):
        assert re.search(rf"^\| {task} \| [\d.]+, [\d.]+ \| -?[\d.]+ \| -?[\d.]+ \|$", out, re.M), out
    assert re.search(r"^\| mean \| \| -?[\d.]+ \| -?[\d.]+ \|$", out, re.M), out
    assert (tmp_path / "task1-seed0" / "metrics.csv").is_file()
