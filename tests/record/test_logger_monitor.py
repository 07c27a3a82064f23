"""LoggerMonitor and Every: schedules, rates, steps, errors, the background thread; and the
stats() snapshots of replay buffers and collectors it reads."""

from __future__ import annotations

import time

import pytest
import torch

from streamrl.collectors import SyncDataCollector
from streamrl.data import LazyTensorStorage, ReplayBuffer
from streamrl.envs import GymEnv
from streamrl.record import CSVLogger, Every, LoggerMonitor


class Recorder:
    def __init__(self):
        self.rows = []

    def log_metrics(self, metrics, step=None):
        self.rows.append((dict(metrics), step))


class Counter:
    """A watched object whose counter the test sets."""

    def __init__(self):
        self.count = 0
        self.fail = False

    def stats(self):
        if self.fail:
            raise RuntimeError("stats broke")
        return {"write_count": self.count, "label": "not a number", "flag": True}


def test_every_poll_logs_scalars_rates_and_the_step():
    rec, target = Recorder(), Counter()
    monitor = LoggerMonitor(rec, background=False)
    assert monitor.watch(target, step="write_count") == "counter"
    target.count = 10
    first = monitor.step()["counter"]
    assert first == {"counter/write_count": 10.0, "counter/flag": 1.0}  # no rate yet
    time.sleep(0.02)
    target.count = 30
    second = monitor.step()["counter"]
    assert second["counter/writes_per_second"] > 0
    assert rec.rows[-1][1] == 30  # the step is the named stats entry
    assert "counter/label" not in second  # non-scalars are left out


def test_counter_schedule_logs_when_a_multiple_is_crossed_and_rebaselines():
    rec, target = Recorder(), Counter()
    monitor = LoggerMonitor(rec, background=False)
    monitor.watch(target, name="c", schedule=Every.counter("write_count", 50),
                  log_on_start=False)
    assert monitor.step() == {}  # primes the schedule
    target.count = 40
    assert monitor.step() == {}
    target.count = 160  # crosses 50, 100 and 150: logged once
    assert monitor.step()["c"]["c/write_count"] == 160.0
    assert monitor.step() == {}
    target.count = 10  # went back (a restore): re-baseline, nothing logged
    assert monitor.step() == {}
    target.count = 60
    assert "c" in monitor.step()


def test_seconds_schedule_and_log_on_start():
    rec, target = Recorder(), Counter()
    monitor = LoggerMonitor(rec, background=False)
    monitor.watch(target, name="s", schedule=Every.seconds(0.05))
    assert "s" in monitor.step()  # log_on_start
    assert monitor.step() == {}
    time.sleep(0.06)
    assert "s" in monitor.step()


def test_stop_logs_a_final_snapshot_once():
    rec, target = Recorder(), Counter()
    monitor = LoggerMonitor(rec, background=False)
    monitor.watch(target, name="a", schedule=Every.seconds(100))
    monitor.watch(Counter(), name="b", schedule=Every.seconds(100), log_on_close=False)
    monitor.step()
    n = len(rec.rows)
    monitor.stop()
    assert [set(m) for m, _ in rec.rows[n:]] == [{"a/write_count", "a/flag", "a/writes_per_second"}]
    monitor.stop()  # a second stop is a no-op
    assert len(rec.rows) == n + 1
    monitor.unwatch("a")
    assert monitor.names == ["b"]


def test_background_thread_polls_and_stops(tmp_path):
    rec, target = Recorder(), Counter()
    with LoggerMonitor(rec, poll_interval=0.01) as monitor:
        monitor.watch(target, name="bg")
        deadline = time.monotonic() + 5
        while not rec.rows and time.monotonic() < deadline:
            time.sleep(0.01)
    assert rec.rows
    n = len(rec.rows)
    time.sleep(0.05)
    assert len(rec.rows) == n  # stopped: no more polls


def test_errors_per_policy():
    target = Counter()
    target.fail = True
    warn = LoggerMonitor(Recorder(), background=False)
    warn.watch(target, name="w")
    with pytest.warns(RuntimeWarning, match="stats broke"):
        warn.step()
    warn.step()  # the same failure streak: silent (a warning would fail under -W error)
    ignore = LoggerMonitor(Recorder(), background=False, on_error="ignore")
    ignore.watch(target, name="i")
    assert ignore.step() == {}
    raising = LoggerMonitor(Recorder(), poll_interval=0.01, on_error="raise")
    raising.watch(target, name="r")
    raising.start()
    time.sleep(0.1)
    with pytest.raises(RuntimeError, match="stats broke"):
        raising.stop()


def test_bad_arguments():
    with pytest.raises(TypeError, match="log_metrics"):
        LoggerMonitor(object())
    with pytest.raises(ValueError, match="poll_interval"):
        LoggerMonitor(Recorder(), poll_interval=0)
    with pytest.raises(ValueError, match="on_error"):
        LoggerMonitor(Recorder(), on_error="shout")
    monitor = LoggerMonitor(Recorder(), background=False)
    with pytest.raises(TypeError, match="no stats"):
        monitor.watch(object())
    monitor.watch(Counter(), name="x")
    with pytest.raises(ValueError, match="already registered"):
        monitor.watch(Counter(), name="x")
    with pytest.raises(KeyError, match="no watch named 'y'"):
        monitor.unwatch("y")
    with pytest.raises(ValueError, match="kind"):
        Every("hours", 1)
    with pytest.raises(ValueError, match="interval"):
        Every.seconds(0)
    with pytest.raises(ValueError, match="int"):
        Every.counter("frames", 2.5)
    missing = LoggerMonitor(Recorder(), background=False, on_error="raise")
    missing.watch(Counter(), name="m", schedule=Every.counter("frames", 10))
    with pytest.raises(KeyError, match="'frames'"):
        missing.step()


def test_replay_buffer_and_collector_snapshots_through_a_csv_logger(tmp_path):
    rb = ReplayBuffer(storage=LazyTensorStorage(100))
    assert rb.stats() == {"size": 0, "write_count": 0, "prefetch_queue_size": 0,
                          "initialized": False, "capacity": 100, "utilization": 0.0}
    rb.extend(torch.arange(30))
    rb.extend(torch.arange(90))  # wraps around: size 100, 120 written
    assert rb.stats()["size"] == 100 and rb.write_count == 120
    collector = SyncDataCollector(lambda: GymEnv("CartPole-v1"), None, frames_per_batch=10,
                                  total_frames=30)
    logger = CSVLogger("monitor", log_dir=str(tmp_path))
    monitor = LoggerMonitor(logger, background=False)
    monitor.watch(rb, name="rb", step="write_count")
    monitor.watch(collector, name="collector", step="frames")
    try:
        for _ in collector:
            monitor.step()
    finally:
        collector.shutdown()
    stats = collector.stats()
    assert stats == {"frames": 30, "batches": 3, "requested_frames_per_batch": 10,
                     "total_frames": 30, "completed": True}
    monitor.stop()
    scalars = tmp_path / "monitor" / "scalars"
    written = {str(p.relative_to(scalars)) for p in scalars.rglob("*.csv")}
    assert {"rb/size.csv", "collector/frames.csv", "collector/frames_per_second.csv"} <= written
