"""benchmarks/hiro_maze.py with a tiny budget, in this process: one row per method, a
success rate per seed in [0, 1] (nothing is asserted about the rates); a bad method named."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

# not imported here: gymnasium-robotics imports MuJoCo, which must not be imported before
# streamrl chooses its headless GL backend (a later render in this process would fail)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gymnasium_robotics") is None,
                                reason="needs gymnasium-robotics (the goals extra)")
ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("hiro_maze", ROOT / "benchmarks" / "hiro_maze.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prints_a_row_per_method(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [
        "hiro_maze.py", "--frames", "100", "--seeds", "0", "--episodes", "2", "--hidden", "8",
        "--eval-interval", "100", "--root", str(tmp_path)])
    _script().main()
    out = capsys.readouterr().out
    for name in ("HIRO \\(TD3 at both levels\\)", "flat TD3"):
        row = re.search(rf"^\| {name} \| (\S+) \| (\S+) \| \S+ \| \d+ \|$", out, re.M)
        assert row, out
        assert all(0.0 <= float(x) <= 1.0 for x in row.groups())
    assert (tmp_path / "hiro-seed0" / "goals.png").is_file()
    assert (tmp_path / "flat-seed0" / "checkpoint.pt").is_file()


def test_a_bad_method_is_named(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["hiro_maze.py", "--methods", "hiro,hac"])
    with pytest.raises(SystemExit) as exit_:
        _script().main()
    assert exit_.value.code == 2
    assert "--methods: expected hiro and/or flat, found ['hac']" in capsys.readouterr().err
