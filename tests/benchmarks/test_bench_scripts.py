"""benchmarks/soak.py, offpolicy.py, collectors.py and ppo_cartpole.py: their readings,
summaries and command lines (nothing here is timed)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # offpolicy imports its neighbours by name
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


soak = _load("soak")
offpolicy = _load("offpolicy")
collectors = _load("collectors")
ppo_cartpole = _load("ppo_cartpole")


# ------------------------------------------------------------------------------- soak
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_tree_resources_counts_a_child_while_it_lives():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        seen = soak.tree_resources(os.getpid())
        assert child.pid in seen["pids"] and seen["workers"] >= 1
        assert seen["rss_mib"] > 0 and seen["threads"] >= 1 and seen["fds"] >= 3
    finally:
        child.kill()
        child.wait()
    assert child.pid not in soak.descendants(os.getpid())


def test_frames_logged_reads_the_newest_metrics_row(tmp_path):
    assert soak.frames_logged(str(tmp_path)) is None  # no file yet
    rows = [{"frames": 256, "loss": 1.0}, {"frames": 512}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert soak.frames_logged(str(tmp_path)) == 512


def _row(t, rss, threads=7, fds=9, workers=1):
    return {"t_min": t, "rss_mib": rss, "threads": threads, "fds": fds, "workers": workers,
            "shm": 2, "queued": 0, "frames": int(t * 1000)}


def test_summary_measures_growth_after_the_warm_up_only():
    rows = [_row(1, 100), _row(3, 300), _row(5, 310), _row(7, 320)]
    line = soak.summarize({"name": "p", "rows": rows, "exit": 130, "workers_left": [],
                           "tail": []}, warmup_min=3)
    fields = line.split()
    assert fields[:4] == ["p", "300", "320", "+5.00"]  # 20 MiB over 4 minutes
    assert fields[-2:] == ["130", "none"]


def test_summary_reports_leftover_workers_and_a_run_without_samples():
    left = soak.summarize({"name": "p", "rows": [_row(1, 10, threads=5), _row(2, 10, threads=9)],
                           "exit": 130, "workers_left": [11, 12], "tail": []}, warmup_min=0)
    assert "5-9" in left.split() and left.split()[-1] == "2"
    empty = soak.summarize({"name": "p", "rows": [], "exit": 1, "workers_left": [],
                            "tail": ["Traceback", "ValueError: bad"]}, warmup_min=3)
    assert "no samples (exit 1)" in empty and "ValueError: bad" in empty


def test_soak_refuses_unknown_pipelines(capsys):
    with pytest.raises(SystemExit) as info:
        soak.main(["--pipelines", "ppo_cartpole,nope"])
    assert info.value.code == 2
    assert "unknown pipelines ['nope']" in capsys.readouterr().err


@pytest.mark.slow
def test_soak_stops_a_pipeline_with_sigint_and_finds_no_worker_left(tmp_path, capsys):
    # the soak's own side runs here (its child, the pipeline, runs in a fresh interpreter as
    # always), with SIGINT ignored, as a shell's background job starts: the child inherits it
    start = time.perf_counter()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = soak.main(["--pipelines", "dqn_cartpole", "--minutes", "0.05", "--interval", "1",
                          "--warmup-minutes", "0", "--workdir", str(tmp_path)])
    finally:
        signal.signal(signal.SIGINT, previous)
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    # the pipeline's worker was running when the soak sampled it, before the stop at 3 s
    # (measured: the first sample, at 1 s, finds it, with 2,560 frames collected)
    workers = [int(w) for w in re.findall(r"^dqn_cartpole +t=.* workers (\d+) ", out, re.M)]
    assert workers and max(workers) >= 1, out[-3000:]
    last = out.strip().splitlines()[-1].split()
    assert last[0] == "dqn_cartpole" and last[-2:] == ["130", "none"]
    assert (tmp_path / "dqn_cartpole" / "checkpoint.pt").exists()
    assert time.perf_counter() - start < 200


# --------------------------------------------------------------------------- offpolicy
def test_dqn_summary_takes_medians_over_solved_runs():
    runs = [{"solved_at": 40000, "wall": 50.0}, {"solved_at": None, "wall": 90.0},
            {"solved_at": 20000, "wall": 30.0}, {"solved_at": 30000, "wall": 40.0}]
    assert offpolicy.dqn_summary("x", runs) == (
        "x: solved 3/4; median over solved runs: 30,000 steps, wall 40.0 s")
    assert offpolicy.dqn_summary("x", runs[1:2]) == "x: solved 0/1"


def test_offpolicy_refuses_unknown_parts(capsys):
    with pytest.raises(SystemExit) as info:
        offpolicy.main(["--parts", "sac,ppo"])
    assert info.value.code == 2 and "unknown parts ['ppo']" in capsys.readouterr().err


def test_sac_rounds_are_summed_up_as_medians_of_the_rounds_ratios():
    rounds = [[("SB3", 1.0, 100.0), ("ours", 1.0, 130.0)],
              [("SB3", 1.0, 80.0), ("ours", 1.0, 100.0)],   # 1.25
              [("SB3", 1.0, 90.0), ("ours", 1.0, 126.0)]]   # 1.40
    lines = offpolicy.sac_medians(rounds).splitlines()
    assert lines[0] == "medians over 3 rounds (updates/s, ratio to SB3 per round):"
    assert lines[1].split() == ["SB3", "90.0", "1.00"]
    # the median of the rounds' ratios (1.30), not the ratio of the medians (1.40)
    assert lines[2].split() == ["ours", "126.0", "1.30"]


def test_sac_rounds_below_one_are_refused(capsys):
    with pytest.raises(SystemExit) as info:
        offpolicy.main(["--parts", "sac", "--sac-rounds", "0"])
    assert info.value.code == 2 and "--sac-rounds: expected >= 1, found 0" in (
        capsys.readouterr().err)


def test_the_eager_sac_update_runs_and_reports_a_time():
    ms, first = offpolicy._time_sac_update(False, 2)
    assert ms > 0 and first > 0


# -------------------------------------------------------------------------- ppo_cartpole
def test_the_hand_written_ppo_limit_runs_the_frames_asked():
    # 512 frames: two collections of 8 x 32, each followed by 20 epochs of one minibatch
    seconds = ppo_cartpole.run_plain(0, 512, 200_000)
    assert seconds > 0


def test_the_hand_written_ppo_evaluates_on_its_schedule_and_says_whether_it_solved(
        monkeypatch):
    # every 256 frames: two evaluations of the barely trained policy, which does not solve
    run = ppo_cartpole._plain(0, 512, 200_000, "solve", "256")
    assert (run["evals"], run["solved"], run["frames"]) == ("2", "None", "512")
    # the benchmark's runs: the whole budget as the horizon, the default interval (8,192)
    calls = []

    def fake(*args):
        calls.append(args)
        return {"solved": "16384" if len(calls) == 1 else "None"}

    monkeypatch.setattr(ppo_cartpole, "_plain", fake)
    assert ppo_cartpole.solve_plain(3, 200_000) == 16384
    assert ppo_cartpole.solve_plain(4, 1000) is None
    assert calls == [(3, 200_000, 200_000, "solve"), (4, 1000, 1000, "solve")]
    assert ppo_cartpole.limit_solves_line([8192, None, 16384, 24576]) == (
        "limit solves: 3/4; median 16,384 steps (mean 16,384)")
    assert ppo_cartpole.limit_solves_line([None]) == "limit solves: 0/1"


# -------------------------------------------------------------------------- collectors
def test_every_limit_belongs_to_a_row_and_runs():
    assert set(collectors.ROW_LIMIT) <= set(collectors.ROWS)
    assert set(collectors.ROW_LIMIT.values()) <= set(collectors.LIMITS)
    assert collectors.limit_gym_loop(200) > 0
    assert collectors.limit_vector_loop(80, n=8) > 0


def test_collector_rounds_measure_everything_in_turn_and_take_medians(monkeypatch, capsys):
    # fixed figures in place of the measurements: the order of the calls per round, the
    # best figures, the medians of the rounds' shares and ratios, and the ratio of the bests
    calls = []
    mine = iter([100.0, 400.0, 300.0])
    limit = iter([200.0, 500.0, 400.0])
    peer = iter([10.0, 100.0, 20.0])

    def time_collector(make, frames):
        calls.append("streamrl")
        return next(mine)

    def gym_loop(frames):
        calls.append("limit")
        return next(limit)

    def torchrl_figures(python, frames, rows):
        calls.append("torchrl")
        return {"sync-gym": next(peer)}, None

    monkeypatch.setattr(collectors, "time_collector", time_collector)
    monkeypatch.setitem(collectors.LIMITS, "gym-loop", gym_loop)
    monkeypatch.setattr(collectors, "torchrl_figures", torchrl_figures)
    monkeypatch.setattr(sys, "argv", ["collectors.py", "--only", "sync-gym", "--rounds", "3"])
    collectors.main()
    out = capsys.readouterr().out
    assert calls == ["limit", "streamrl", "torchrl"] * 3
    # shares 0.5, 0.8, 0.75 -> 0.75; ratios 10, 4, 15 -> 10; bests 400 / 100 = 4
    assert re.search(r"^sync-gym +400 +500 +0.75 +100 +4.0x +10.0x$", out, re.M), out


def test_collectors_refuse_no_rounds(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["collectors.py", "--rounds", "0", "--no-peers"])
    with pytest.raises(SystemExit):
        collectors.main()
    assert "--rounds must be >= 1" in capsys.readouterr().err
