"""benchmarks/multiagent.py with a tiny budget and no TorchRL: a figure per row and the table
(nothing is asserted about the figures beyond being positive)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

pytest.importorskip("vmas")
pytest.importorskip("mpe2")


def _load():
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # it imports its neighbour _peers by name
    spec = importlib.util.spec_from_file_location("bench_multiagent", BENCHMARKS / "multiagent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_prints_a_figure_and_a_table_row_per_row(monkeypatch, capsys):
    bench = _load()
    monkeypatch.setattr(sys, "argv", [
        "multiagent.py", "--frames", "1", "--pz-frames", "1", "--updates", "2", "--repeats", "1",
        "--no-peers"])
    bench.main()  # in this process: no interpreter start-up
    out = capsys.readouterr().out
    assert "torchrl:" not in out  # --no-peers: no note about a missing TorchRL either
    for row, (unit, target) in bench.ROWS.items():
        figure = re.search(rf"^round 1 streamrl {row} +([\d.]+) {unit}$", out, re.M)
        assert figure and float(figure.group(1)) > 0, out
        line = re.search(rf"^{row} +{unit} +([\d.]+) +n/a +{target:.1f}x$", out, re.M)
        assert line and float(line.group(1)) == pytest.approx(float(figure.group(1)), abs=0.1), out


def test_rounds_alternate_the_libraries_and_the_ratios_are_per_round(monkeypatch, capsys):
    # fixed figures in place of both libraries' runs: the order of the calls, each library's
    # best round, the ratio of the bests and the median of the rounds' ratios
    bench = _load()
    calls = []
    ours = iter([100.0, 300.0, 200.0])
    theirs = iter([50.0, 100.0, 100.0])

    def run(rows, *args):
        calls.append(("streamrl", args[3]))
        args[-1]("pettingzoo-collect", next(ours))

    def peer(python, snippet, name, settings):
        calls.append(("torchrl", settings[4]))
        return {"pettingzoo-collect": next(theirs)}, None

    monkeypatch.setattr(bench, "streamrl_workload", lambda: {"run": run})
    monkeypatch.setattr(bench, "run_torchrl_script", peer)
    monkeypatch.setattr(sys, "argv", ["multiagent.py", "--only", "pettingzoo-collect",
                                      "--repeats", "3"])
    bench.main()
    out = capsys.readouterr().out
    # one run each per round, in turn
    assert calls == [("streamrl", 1), ("torchrl", "1")] * 3
    # bests 300 / 100 = 3.00x; rounds 2.0, 3.0, 2.0: median 2.00x (under the 3x target)
    assert re.search(r"^pettingzoo-collect +team-frames/s +300.0 +100.0 +3.00x +2.00x +3.0x "
                     r"MISSED$", out, re.M), out


def test_refuses_unknown_rows_and_empty_budgets(monkeypatch, capsys):
    bench = _load()
    for argv, message in ((["--only", "bogus"], "unknown row 'bogus'"),
                          (["--updates", "0"], "--updates must be >= 1")):
        monkeypatch.setattr(sys, "argv", ["multiagent.py", "--no-peers", *argv])
        with pytest.raises(SystemExit):
            bench.main()
        assert message in capsys.readouterr().err


def test_the_workload_runs_with_streamrl_imports_only():
    bench = _load()
    workload = bench.streamrl_workload()
    assert workload["Collector"].__module__.startswith("streamrl.")
    assert workload["ClipPPOLoss"].__module__.startswith("streamrl.")
    assert "torchrl" not in bench.WORKLOAD.replace("from torchrl.", "from streamrl.")
