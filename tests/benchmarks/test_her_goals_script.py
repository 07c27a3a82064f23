"""benchmarks/her_goals.py with a tiny budget: one row per HER ratio, a success rate per
seed in [0, 1] (nothing is asserted about the rates)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from streamrl.cli import load_pipeline

# not imported here: gymnasium-robotics imports MuJoCo, which must not be imported before
# streamrl chooses its headless GL backend (a later render in this process would fail)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gymnasium_robotics") is None,
                                reason="needs gymnasium-robotics (the goals extra)")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_prints_a_row_per_her_ratio(tmp_path, monkeypatch, capsys):
    # in this process (no interpreter start-up): the script plays PointMaze through streamrl's
    # GymEnv, as tests/pipelines/test_sac_her.py does here, never importing MuJoCo first
    bench = load_pipeline(ROOT / "benchmarks" / "her_goals.py")
    monkeypatch.setattr(sys, "argv", [
        "her_goals.py", "--frames", "200", "--seeds", "0,1", "--episodes", "2", "--hidden", "8",
        "--eval-interval", "200", "--her-ratios", "0.5,0", "--root", str(tmp_path)])
    bench.main()
    out = capsys.readouterr().out
    for ratio in ("0.5", "0"):
        row = re.search(rf"^\| {ratio} \| (\S+) / (\S+) \| (\S+) \| \d+ \|$", out, re.M)
        assert row, out
        assert all(0.0 <= float(x) <= 1.0 for x in row.groups())
    assert (tmp_path / "her0.5-seed1" / "checkpoint.pt").is_file()
