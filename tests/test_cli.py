"""The command line: ``streamrl run demo``."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from streamrl.cli import main


@pytest.mark.parametrize("placement", ["inline", "process"])
def test_demo_collects_and_reports(capsys, placement):
    assert main(["run", "demo", "--frames", "2048", "--envs", "4", "--placement", placement]) == 0
    out = capsys.readouterr().out
    assert "Graph 'demo'" in out
    assert "bottleneck:" in out
    assert "collected 2,048 frames from 4 CartPole envs" in out
    assert "a replay sample: batch_size=(256,)" in out
    assert not mp.active_children()


def test_unknown_pipeline_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "no-such-pipeline"])
    assert info.value.code == 2
    assert "unknown pipeline 'no-such-pipeline'" in capsys.readouterr().err
