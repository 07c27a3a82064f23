"""benchmarks/offline_training.py with a tiny budget: it records the four datasets with
``streamrl dataset create``, prints the normalized table for the algorithms asked and the
offline-to-online comparison (nothing is asserted about the scores)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.recording_support import tiny_checkpoint

pytest.importorskip("minari")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_records_the_datasets_and_prints_both_tables(tmp_path):
    ckpt = tiny_checkpoint("sac_pendulum", tmp_path / "sac")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "offline_training.py"), "--expert",
           str(ckpt), "--medium", str(ckpt), "--updates", "10", "--seeds", "0",
           "--episodes", "2", "--algos", "bc,iql", "--datasets", "random,medium-replay",
           "--o2o-frames", "200", "--root", str(tmp_path / "data")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for name in ("random", "medium", "medium-replay", "expert"):
        assert re.search(rf"^  {re.escape(name)} +\d+ steps, mean return", out, re.M), out
    assert "| algorithm | random | medium-replay |" in out
    assert re.search(r"^\| bc \| -?[\d.]+ \+- 0\.0 \| -?[\d.]+ \+- 0\.0 \|$", out, re.M), out
    assert re.search(r"^\| iql \|", out, re.M)
    assert re.search(r"^\| 0 \| .* \| .* \|$", out, re.M), out  # the offline-to-online row
    # a second run reuses the recorded datasets
    again = subprocess.run([*cmd[:-4], "--root", str(tmp_path / "data")], capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "recorded" not in again.stdout


def test_the_offline_to_online_rows_refuse_an_env_other_than_pendulum(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "offline_training.py"), "--expert", "e.pt",
           "--medium", "m.pt", "--env", "HalfCheetah-v5", "--o2o-frames", "10",
           "--root", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "runs on Pendulum-v1 only, found --env HalfCheetah-v5" in done.stderr
    assert not any(tmp_path.iterdir())  # refused before recording anything
