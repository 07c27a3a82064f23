"""benchmarks/option_critic.py with a tiny budget: a row per method and a line per seed
(nothing is asserted about the figures)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_prints_a_row_per_method(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "option_critic.py"), "--frames", "2560",
           "--seeds", "0", "--window", "640", "--eval-interval", "640", "--root", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for name in (r"option-critic \(4 options\)", r"flat actor-critic \(1 option\)"):
        assert re.search(rf"^\| {name} \| [^|]+ \| [\d.]+ \| [\d.]+ \|$", out, re.M), out
        assert re.search(rf"^  {name}, seed 0: first goal ", out, re.M), out
    assert (tmp_path / "options1-seed0" / "metrics.csv").is_file()
