"""benchmarks/option_critic.py with a tiny budget: a row per method and a line per seed
(nothing is asserted about the figures)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from streamrl.cli import load_pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_prints_a_row_per_method(tmp_path, monkeypatch, capsys):
    bench = load_pipeline(ROOT / "benchmarks" / "option_critic.py")
    monkeypatch.setattr(sys, "argv", [
        "option_critic.py", "--frames", "2560", "--seeds", "0", "--window", "640",
        "--eval-interval", "640", "--root", str(tmp_path)])
    bench.main()  # in this process: no interpreter start-up (a third of the test's time)
    out = capsys.readouterr().out
    for name in (r"option-critic \(4 options\)", r"flat actor-critic \(1 option\)"):
        row = re.search(rf"^\| {name} \| [^|]+ \| [\d.]+ \| [\d.]+ \| ([\d.]+) \|$", out, re.M)
        assert row and 0 <= float(row.group(1)) <= 1, out
        assert re.search(rf"^  {name}, seed 0: first goal .*, termination [\d.]+$", out, re.M), out
    assert (tmp_path / "options1-seed0" / "metrics.csv").is_file()


def test_set_changes_option_critics_config_only_and_no_flat_leaves_the_baseline_out(
        tmp_path, monkeypatch, capsys):
    bench = load_pipeline(ROOT / "benchmarks" / "option_critic.py")
    monkeypatch.setattr(sys, "argv", ["option_critic.py", "--set", "bogus=1"])
    with pytest.raises(SystemExit):
        bench.main()
    assert "--set: expected FIELD=VALUE" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", [
        "option_critic.py", "--frames", "1280", "--seeds", "0", "--window", "640",
        "--eval-interval", "640", "--no-flat", "--set", "termination_reg=0.05",
        "--root", str(tmp_path)])
    bench.main()  # in this process: no interpreter start-up
    out = capsys.readouterr().out
    assert "option-critic (4 options, termination_reg=0.05)" in out
    assert "flat actor-critic" not in out
    config = (tmp_path / "options4-termination_reg0.05-seed0" / "config.json").read_text()
    assert '"termination_reg": 0.05' in config
