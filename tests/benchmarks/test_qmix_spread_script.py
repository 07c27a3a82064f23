"""benchmarks/qmix_spread.py with a tiny budget: a row per mixer with a figure per seed, and
its flags' errors (nothing is asserted about the figures)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("pettingzoo")
pytest.importorskip("mpe2")

from streamrl.cli import load_pipeline

ROOT = Path(__file__).resolve().parents[2]


def test_prints_a_row_per_mixer(tmp_path, monkeypatch, capsys):
    bench = load_pipeline(ROOT / "benchmarks" / "qmix_spread.py")
    monkeypatch.setattr(sys, "argv", [
        "qmix_spread.py", "--frames", "400", "--seeds", "0", "--root", str(tmp_path),
        "--set", "learning_starts=200", "--set", "eval_episodes=2",
        "--set", "rollout_placement=inline"])
    bench.main()  # in this process: no interpreter start-up
    out = capsys.readouterr().out
    assert "400 team frames, learning_starts=200" in out
    for mixer in ("qmix", "vdn", "none"):
        assert re.search(rf"^\| {mixer} \| -[\d.]+ \| -[\d.]+ \| -[\d.]+ \| \d+ s \|$", out,
                         re.M), out
        assert (tmp_path / f"{mixer}-learning_starts200-eval_episodes2-rollout_placementinline"
                f"-seed0" / "metrics.csv").is_file()
    assert re.search(r"^uniformly random policy on the same episodes: -[\d.]+$", out, re.M)


@pytest.mark.parametrize("flags, message", [
    (["--mixers", "qmix,coma"], "--mixers: unknown ['coma']"),
    (["--set", "bogus=1"], "--set: expected FIELD=VALUE"),
])
def test_bad_flags(flags, message, monkeypatch, capsys):
    bench = load_pipeline(ROOT / "benchmarks" / "qmix_spread.py")
    monkeypatch.setattr(sys, "argv", ["qmix_spread.py", *flags])
    with pytest.raises(SystemExit):
        bench.main()
    assert message in capsys.readouterr().err
