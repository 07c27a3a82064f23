"""benchmarks/graph_ray.py's broadcast, collection and overhead sections: the command line, the
tables, and (slow, on a local Ray) each measuring path at tiny sizes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))  # the scripts import their neighbours by name

import collectors  # noqa: E402,F401  (its policy is sent to Ray workers by value)
import graph_ray  # noqa: E402
import ray_broadcast  # noqa: E402
import ray_collection  # noqa: E402


class _Batch:
    def __init__(self, n: int):
        self.n = n

    def numel(self) -> int:
        return self.n


def test_time_batches_counts_only_after_the_first_batch_and_stops_at_the_budget():
    batches = [_Batch(10)] * 6
    r = ray_collection.time_batches(batches, 30, 0.0)
    assert r["fps"] > 0 and r["startup_s"] > 0 and r["driver_cpu_ms"] >= 0
    # three batches after the first make the 30 frames: the other two are not consumed
    it = iter([_Batch(10)] * 6)
    ray_collection.time_batches(it, 30, 0.0)
    assert len(list(it)) == 2
    with pytest.raises(RuntimeError, match="expected batches after the first, found 0"):
        ray_collection.time_batches([_Batch(10)], 30, 0.0)


def test_the_tables_print_every_system_and_say_where_a_figure_is_missing(capsys):
    fig = {"fps": 1000.0, "startup_s": 2.5, "driver_cpu_ms": 1.0}
    results = {"streamrl ray": {("CartPole", 1): fig, ("CartPole", 2): {**fig, "fps": 1800.0}},
               "local procs": {("CartPole", 1): fig}}
    ray_collection.print_collection(results, ["CartPole"], [1, 2], 100, {"CartPole": 500})
    out = capsys.readouterr().out
    assert "torchrl ray" in out and out.count("n/a") == 3  # local x2, torchrl x1 and x2
    assert "1800" in out
    line = ray_collection.scaling_line(results["streamrl ray"], "CartPole", [1, 2])
    assert line == "CartPole relative to 1 actor(s): 2: x1.80"
    assert ray_collection.scaling_line({}, "Pong", [1, 2]) == "Pong: no figures"


def test_the_overhead_line_fills_in_the_formula(capsys):
    ray_collection.print_overhead(
        {"CartPole": {"step_ms": 9.0, "outside_ms": 1.0, "driver_cpu_ms": 0.5, "fps": 9e4}},
        1000, 2)
    out = capsys.readouterr().out
    assert "on 2 cores scaling flattens at 2 actors" in out
    # 1000 frames / 10 ms per batch and actor; the driver's 0.5 ms caps at 2M frames/s
    assert "N x 1000 / (9.00 + 1.00 ms) = N x 100,000 frames/s" in out
    assert "about 2,000,000 frames/s (N ~ 20)" in out
    ray_collection.print_overhead(
        {"CartPole": {"step_ms": 9.0, "outside_ms": 1.0, "driver_cpu_ms": 0.5, "fps": 9e4}},
        1000, 2, {"CartPole": 1.0})
    assert "RayCollector the driver spends 1.00 ms CPU per batch: about 1,000,000 frames/s, N ~ 10"\
        in capsys.readouterr().out


def test_a_peers_python_that_is_missing_gives_a_note_instead_of_figures(tmp_path):
    rows, note = ray_collection.torchrl_ray(str(tmp_path / "nope"), "CartPole", [1], 10, 10)
    assert rows == {} and note == f"{tmp_path / 'nope'} not found"
    rows, note = ray_collection.torchrl_ray(sys.executable, "CartPole", [1], 10, 10)
    if "cannot import" in (note or ""):  # this venv has no torchrl: said so
        assert rows == {} and "torchrl and ray" in note


@pytest.mark.parametrize("argv, message", [
    (["--sections", "hops,nope"], "--sections: expected some of"),
    (["--envs", "Breakout"], "--envs: expected some of"),
    (["--actors", "1,x"], "--actors: expected comma-separated ints"),
    (["--actors", "0"], "--actors: expected ints >= 1"),
])
def test_bad_arguments_are_refused_before_ray_starts(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        graph_ray.main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_the_policy_has_about_a_million_parameters():
    n = ray_broadcast.n_params(ray_broadcast.policy_net())
    assert 1_000_000 <= n <= 1_100_000


@pytest.mark.slow
def test_each_measuring_path_runs_at_tiny_sizes():
    from tests.ray_support import assert_no_actors, local_ray

    with local_ray("ray_broadcast", "ray_collection", "collectors") as ray:
        # one reader per path: each actor costs seconds of start-up (importing torch), and
        # one port to several actors is tested in tests/graph/test_ray_direct.py
        for direct in (True, False):
            r = ray_broadcast.graph_broadcast(1, 2, direct=direct, hidden=128)
            assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["startup_s"] > 0
        r = ray_broadcast.bare_ray_broadcast(ray, 1, 2, shared=True, hidden=128)
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"]
        r = ray_collection.streamrl_ray("CartPole", 1, 400, 100)
        assert r["fps"] > 0 and r["startup_s"] > 0
        r = ray_collection.actor_overhead("CartPole", 1, 3, 100)
        assert r["step_ms"] > 0 and r["outside_ms"] >= 0 and r["driver_cpu_ms"] > 0
        assert r["fps"] > 0
        assert_no_actors(ray)
