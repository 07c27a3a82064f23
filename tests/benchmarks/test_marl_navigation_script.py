"""benchmarks/marl_navigation.py with a tiny budget, in this process (streamrl only): one
row per method with a return per seed (nothing is asserted about the returns); bad budgets
and --set with TorchRL refused."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vmas") is None,
                                reason="needs vmas (the marl extra)")
ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("marl_navigation",
                                                  ROOT / "benchmarks" / "marl_navigation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["--no-peers", "--seeds", "0,1", "--set", "num_envs=2", "--set", "steps_per_env=20",
        "--set", "max_steps=20", "--set", "minibatch_size=20", "--set", "epochs=1",
        "--set", "hidden=8"]


def test_prints_a_row_per_method(capsys):
    assert _script().main([*TINY, "--frames", "80"]) == 0
    out = capsys.readouterr().out
    for method in ("mappo", "ippo"):
        row = re.search(rf"^{method} streamrl\s+(\S+) / (\S+)\s+(\S+)\s+(\S+) / (\S+)\s+(\S+)",
                        out, re.M)
        assert row, out
        assert all(abs(float(x)) < 1e3 for x in row.groups())
    assert "torchrl" not in out.split("\n", 2)[-1]


def test_bad_arguments_are_refused(capsys):
    script = _script()
    with pytest.raises(SystemExit):
        script.main([*TINY, "--frames", "50"])  # not a multiple of the 40-frame batch
    assert "multiple of the batch (40 frames), found 50" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--set", "epochs=1", "--peers-python", "/nonexistent"])
    assert "--no-peers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--no-peers", "--methods", "qmix"])
    assert "found qmix" in capsys.readouterr().err
