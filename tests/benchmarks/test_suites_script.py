"""benchmarks/suites.py and suites_training.py: the command line, the tables and the targets
(nothing here is timed; the doctests of both files run too)."""

from __future__ import annotations

import doctest
import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # suites imports suites_training by name
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


suites = _load("suites")
training = _load("suites_training")


@pytest.mark.parametrize("module", [suites, training], ids=["suites", "suites_training"])
def test_doctests_pass(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_default_arguments_run_both_parts_with_short_budgets():
    args = suites.parse_args([])
    assert args.parts == ["collect", "updates"]
    assert (args.steps, args.learning_starts, args.learning) == (2000, 1000, False)
    assert suites.parse_args(["--full"]).steps == 20_000
    assert suites.parse_args(["--full", "--steps", "500"]).steps == 500


@pytest.mark.parametrize("argv, message", [
    (["--parts", "collect,replay"], "unknown parts ['replay']"),
    (["--frames", "0"], "--frames must be >= 1, found 0"),
    (["--budget-scale", "0"], "--budget-scale must be > 0, found 0.0"),
])
def test_bad_arguments_exit_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        suites.parse_args(argv)
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_collection_table_ratios_use_the_same_layout_or_the_suite_raw_loop():
    F = suites.Figure
    rows = [F("Pong", "1 env", "raw gymnasium", 1000.0),
            F("Pong", "2 envs", "SB3 2.9.2", 2000.0),
            F("Pong", "2 envs", "streamrl", 500.0),
            F("Pong", "2 envs", "TorchRL 0.14.1", None, "no torchrl")]
    table = suites.format_table("T", "steps/s", rows, "SB3 2.9.2").splitlines()
    # the raw loop has no SB3 row of its layout: the suite's SB3 row is the reference
    assert table[2].split()[-1] == "0.50"
    assert table[4].split()[-1] == "0.25"
    assert table[5].endswith("not measured (no torchrl)")
    targets = suites.format_targets(rows).splitlines()
    assert targets == [
        "Pong  2 envs  streamrl / SB3 2.9.2: 0.25x (target >= 1x: missed)",
        "Pong  2 envs  streamrl / raw gymnasium: 0.50x (target >= 0.5x: met)",
    ]


def test_every_system_lists_rows_of_known_suites_and_layouts():
    layouts = {(suites.CHEETAH, lay) for lay in suites.CHEETAH_LAYOUTS}
    layouts |= {(suites.PONG, lay) for lay in suites.PONG_LAYOUTS}
    for system in suites.SYSTEMS:
        rows = suites.collection_rows(system)
        assert rows and all((f.suite, f.layout) in layouts and f.value is None
                            for f, _ in rows)
    with pytest.raises(ValueError, match="unknown system 'RLlib'"):
        suites.collection_rows("RLlib")


def test_update_table_marks_missing_rows():
    U = training.UpdateFigure
    table = training.format_update_table([
        U("TD3", "SB3 2.9.2", 70.0, 70.0),
        U("TD3", "streamrl td3_mujoco (lockstep)", None, None, "RuntimeError: boom"),
    ]).splitlines()
    assert table[1].split()[-1] == "1.00"
    assert table[2].endswith("not measured (RuntimeError: boom)")


def test_peer_rows_without_the_peers_python_say_why(tmp_path):
    missing = str(tmp_path / "python")
    assert suites.peer_figures(missing, 10, 1) == ([], f"{missing} not found")
