"""streamrl.train: checkpoints, metrics files, run dirs, evaluation, config flags."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import json

import pytest
import torch

from streamrl.envs import GymEnv, SerialEnv
from streamrl.train import (
    MetricsLogger,
    add_config_arguments,
    check_field,
    check_non_negative_ints,
    check_positive_ints,
    config_from_args,
    evaluate_episodes,
    load_checkpoint,
    make_run_dir,
    plot_metrics,
    read_metrics,
    save_checkpoint,
)


# ------------------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip_loads_with_weights_only(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": net.state_dict(), "optimizer": opt.state_dict(), "frames": 123,
             "config": {"lr": 0.1, "name": "x", "target": None}, "history": [(1, 2.5)]}
    path = save_checkpoint(tmp_path / "sub" / "ckpt.pt", state)
    assert path == tmp_path / "sub" / "ckpt.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["frames"] == 123 and raw["config"] == {"lr": 0.1, "name": "x", "target": None}
    loaded = load_checkpoint(path)
    fresh = torch.nn.Linear(3, 2)
    fresh.load_state_dict(loaded["model"])
    torch.testing.assert_close(fresh.weight, net.weight)
    opt2 = torch.optim.Adam(fresh.parameters(), lr=0.1)
    opt2.load_state_dict(loaded["optimizer"])
    assert opt2.state_dict()["state"][0]["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["ckpt.pt"]  # no temp file left


def test_checkpoint_rejects_objects_that_need_pickle(tmp_path):
    with pytest.raises(TypeError, match=r"state\['cfg'\]\['obj'\] has type object"):
        save_checkpoint(tmp_path / "c.pt", {"cfg": {"obj": object()}})
    with pytest.raises(TypeError, match="must be a mapping"):
        save_checkpoint(tmp_path / "c.pt", [1, 2])
    assert not list(tmp_path.iterdir())


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", {"v": 1})

    def broken(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"v": 2})
    monkeypatch.undo()
    assert load_checkpoint(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_failed_save_names_the_checkpoint_file(tmp_path, monkeypatch):
    import errno

    def full(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=r"No space left on device: '.*c\.pt'"):
        save_checkpoint(tmp_path / "c.pt", {"v": 2})
    assert list(tmp_path.iterdir()) == []


def test_remove_temporaries_of_a_killed_write(tmp_path):
    from streamrl.train.checkpoint import remove_temporaries

    path = save_checkpoint(tmp_path / "checkpoint.pt", {"v": 1})
    torn = [tmp_path / ".checkpoint.pt.abc123.tmp", tmp_path / ".checkpoint.pt.x.tmp"]
    for t in torn:
        t.write_bytes(b"half")
    other = tmp_path / ".other.pt.abc.tmp"  # another file's: kept
    other.write_bytes(b"")
    assert remove_temporaries(path) == sorted(torn)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.abc.tmp", "checkpoint.pt"]
    assert remove_temporaries(tmp_path / "missing" / "checkpoint.pt") == []


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="holds a list, expected a dict"):
        load_checkpoint(tmp_path / "list.pt")


# ------------------------------------------------------------------------------ metrics
def test_metrics_logger_writes_csv_and_jsonl(tmp_path):
    with MetricsLogger(tmp_path, columns=["frames", "loss", "eval"]) as log:
        log.log({"frames": 256, "loss": torch.tensor(0.5)})
        log.log({"frames": 512, "loss": 0.25, "eval": 20.0})
        assert log.rows == 2
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["frames", "loss", "eval"]
    assert rows[0] == {"frames": "256", "loss": "0.5", "eval": ""}
    assert read_metrics(tmp_path) == [{"frames": 256, "loss": 0.5},
                                      {"frames": 512, "loss": 0.25, "eval": 20.0}]
    log.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        log.log({"frames": 1})


def test_metrics_logger_bad_input(tmp_path):
    with MetricsLogger(tmp_path) as log:
        log.log({"a": 1})  # columns from the first row
        with pytest.raises(ValueError, match=r"unknown metric columns \['b'\]"):
            log.log({"a": 2, "b": 3})
        with pytest.raises(ValueError, match="one value"):
            log.log({"a": torch.zeros(2)})
        with pytest.raises(TypeError, match="found list"):
            log.log({"a": [1]})
        with pytest.raises(TypeError, match="mapping"):
            log.log([("a", 1)])
    with pytest.raises(ValueError, match="unique"):
        MetricsLogger(tmp_path / "x", columns=["a", "a"])
    nan = float("nan")
    with MetricsLogger(tmp_path / "n") as log:
        log.log({"v": nan})
    assert json.loads((tmp_path / "n" / "metrics.jsonl").read_text()) == {"v": "nan"}


def test_metrics_logger_resume_keeps_the_history_up_to_the_checkpoint(tmp_path):
    with MetricsLogger(tmp_path, columns=["frames", "loss"]) as log:
        for frames in (256, 512, 512, 768, 1024):
            log.log({"frames": frames, "loss": frames / 1000})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"frames": 1280, "lo')  # a row cut short by a kill
    assert [r["frames"] for r in read_metrics(tmp_path)] == [256, 512, 512, 768, 1024]
    # resumed from a checkpoint at 512 frames: the rows past it go, new ones follow
    with MetricsLogger(tmp_path, columns=["frames", "loss"], resume_at=512) as log:
        log.log({"frames": 768, "loss": 7.0})
    assert [(r["frames"], r["loss"]) for r in read_metrics(tmp_path)] == [
        (256, 0.256), (512, 0.512), (512, 0.512), (768, 7.0)]
    with open(tmp_path / "metrics.csv") as f:
        assert [r["frames"] for r in csv.DictReader(f)] == ["256", "512", "512", "768"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv", "metrics.jsonl"]
    # columns from the kept rows when not given; a fresh run (no resume_at) starts empty
    with MetricsLogger(tmp_path, resume_at=256) as log:
        assert log.columns == ["frames", "loss"]
        log.log({"frames": 300})
    assert [r["frames"] for r in read_metrics(tmp_path)] == [256, 300]
    with MetricsLogger(tmp_path, columns=["frames"]) as log:
        log.log({"frames": 1})
    assert read_metrics(tmp_path) == [{"frames": 1}]
    # resuming where there is no history yet is a fresh start
    with MetricsLogger(tmp_path / "new", columns=["frames"], resume_at=512) as log:
        log.log({"frames": 768})
    assert read_metrics(tmp_path / "new") == [{"frames": 768}]
    with pytest.raises(ValueError, match="resume_at must be an int >= 0 or None, found -1"):
        MetricsLogger(tmp_path, resume_at=-1)


def test_read_metrics_names_a_bad_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"frames": 1}\nnot json\n{"frames": 2}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl' line 2 is not a JSON row"):
        read_metrics(tmp_path)


def test_metrics_logger_write_errors_name_the_file(tmp_path, monkeypatch):
    import errno

    from streamrl.ops import metrics_logger

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    real_open = open
    monkeypatch.setattr(metrics_logger, "open", lambda path, *a, **k: Full(real_open(path, *a, **k)),
                        raising=False)
    with MetricsLogger(tmp_path, columns=["frames"]) as log:
        with pytest.raises(OSError, match=r"No space left on device: '.*metrics\.csv'"):
            log.log({"frames": 1})


def test_plot_metrics(tmp_path):
    rows = [{"frames": 1, "eval_return": 2.0}, {"frames": 2}]
    out = plot_metrics(rows, tmp_path / "p.png")
    if importlib.util.find_spec("matplotlib") is None:
        assert out is None and not (tmp_path / "p.png").exists()
    else:
        assert out == tmp_path / "p.png" and out.stat().st_size > 0


# ------------------------------------------------------------------------------ run dirs
def test_make_run_dir_is_fresh(tmp_path):
    a = make_run_dir("exp", tmp_path)
    b = make_run_dir("exp", tmp_path)
    assert a != b and a.is_dir() and b.is_dir()
    assert a.name.startswith("exp-") and a.parent == tmp_path
    with pytest.raises(ValueError, match="run name"):
        make_run_dir("../escape", tmp_path)
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ValueError, match=r"'.*file' is not a directory \(it is a file\)"):
        make_run_dir("exp", a_file)


def test_writable_dir(tmp_path):
    from streamrl.train.run_dir import writable_dir

    assert writable_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert writable_dir(tmp_path) == tmp_path and list(tmp_path.iterdir()) == [tmp_path / "a"]
    a_file = tmp_path / "f"
    a_file.write_text("")
    with pytest.raises(ValueError, match=r"'.*/f/run' is not a directory: '.*/f' is a file"):
        writable_dir(a_file / "run")
    with pytest.raises(ValueError, match="is not writable: the directory cannot be created"):
        writable_dir("/proc/streamrl-test")


# ------------------------------------------------------------------------------ evaluation
def _always(action: int):
    def policy(td):
        td.set("action", torch.full(td.batch_size, action, dtype=torch.int64))
        return td
    return policy


def test_evaluate_episodes_one_episode_per_env():
    env = SerialEnv(5, lambda: GymEnv("CartPole-v1", categorical_action_encoding=True))
    try:
        returns = evaluate_episodes(env, _always(0), seed=3)
        assert returns.shape == (5,)
        # pushing one way topples the pole within a few steps, each step is worth 1
        assert ((returns >= 5) & (returns <= 15)).all()
        assert torch.equal(returns, returns.round())
        again = evaluate_episodes(env, _always(0), seed=3)
        assert torch.equal(returns, again)  # re-seeded: the same start states
    finally:
        env.close()


def test_evaluate_episodes_counts_only_the_first_episode():
    env = SerialEnv(2, lambda: GymEnv("CartPole-v1", categorical_action_encoding=True))
    calls = []

    def policy(td):  # env 0 topples fast, env 1 survives longer by alternating
        calls.append(1)
        a = torch.tensor([0, len(calls) % 2])
        td.set("action", a)
        return td

    try:
        returns = evaluate_episodes(env, policy, seed=0)
        assert returns[0] < returns[1]
        assert len(calls) == int(returns[1])  # stepped until the longest episode ended
        with pytest.raises(RuntimeError, match="did not end within max_steps=3"):
            evaluate_episodes(env, _always(0), seed=0, max_steps=3)
        with pytest.raises(TypeError, match="policy must be callable"):
            evaluate_episodes(env, None)
        with pytest.raises(ValueError, match="max_steps"):
            evaluate_episodes(env, _always(0), max_steps=0)
        with pytest.raises(TypeError, match="EnvBase"):
            evaluate_episodes("CartPole-v1", _always(0))
    finally:
        env.close()


# ------------------------------------------------------------------------------ config flags
@dataclasses.dataclass
class _Cfg:
    lr: float = 1e-3
    steps: int = 8
    name: str = "a"
    anneal: bool = True
    target: float | None = 475.0


def test_config_flags():
    parser = add_config_arguments(argparse.ArgumentParser(), _Cfg)
    cfg = config_from_args(_Cfg, parser.parse_args([]))
    assert cfg == _Cfg()
    args = parser.parse_args(["--lr", "0.5", "--steps", "3", "--name", "b", "--no-anneal",
                              "--target", "none"])
    assert config_from_args(_Cfg, args) == _Cfg(0.5, 3, "b", False, None)
    assert config_from_args(_Cfg, parser.parse_args(["--target", "10"])).target == 10.0
    assert config_from_args(_Cfg, args, steps=7).steps == 7


def test_config_flags_bad_values(capsys):
    parser = add_config_arguments(argparse.ArgumentParser(prog="p"), _Cfg)
    with pytest.raises(SystemExit):
        parser.parse_args(["--steps", "1.5"])
    assert "argument --steps: invalid int value: '1.5'" in capsys.readouterr().err
    with pytest.raises(TypeError, match="dataclass"):
        add_config_arguments(argparse.ArgumentParser(), dict)

    @dataclasses.dataclass
    class Bad:
        items: list = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match=r"Bad.items: only int, float, str, bool"):
        add_config_arguments(argparse.ArgumentParser(), Bad)


def test_config_checks_name_the_class_field_and_value():
    check_positive_ints(_Cfg(), "steps")
    for steps in (0, -3, True, 2.0, "8"):
        with pytest.raises(ValueError) as info:
            check_positive_ints(_Cfg(steps=steps), "steps")
        assert str(info.value) == f"_Cfg.steps must be a positive int, found {steps!r}"
    check_non_negative_ints(_Cfg(steps=0), "steps")
    for steps in (-1, False, 0.0, "0"):
        with pytest.raises(ValueError) as info:
            check_non_negative_ints(_Cfg(steps=steps), "steps")
        assert str(info.value) == f"_Cfg.steps must be a non-negative int, found {steps!r}"
    check_field(_Cfg(), "lr", True, "> 0")
    with pytest.raises(ValueError, match=r"^_Cfg.name must be 'a' or 'b', found 'c'$"):
        check_field(_Cfg(name="c"), "name", False, "'a' or 'b'")


def test_evaluate_episodes_unbatched_env():
    env = GymEnv("CartPole-v1", categorical_action_encoding=True)
    try:
        returns = evaluate_episodes(env, _always(1), seed=5)
        assert returns.shape == (1,) and 5 <= returns.item() <= 15
    finally:
        env.close()


def test_field_overrides_read_each_value_as_its_fields_type():
    from streamrl.train import field_overrides

    @dataclasses.dataclass
    class Cfg:
        lr: float = 1e-3
        seed: int = 0
        flat: bool = False
        name: str = "x"
        lag: int | None = None

    assert field_overrides(Cfg, ["lr=0.5", "seed=3", "flat=1", "name=y", "lag=2"]) == {
        "lr": 0.5, "seed": 3, "flat": True, "name": "y", "lag": 2}
    assert field_overrides(Cfg, ["flat=False", "lag=None"]) == {"flat": False, "lag": None}
    with pytest.raises(ValueError, match=r"FIELD a field of Cfg \(flat, lag, lr, name, seed\), "
                                         r"found 'bogus=1'"):
        field_overrides(Cfg, ["bogus=1"])
    with pytest.raises(ValueError, match=r"found 'seed'"):
        field_overrides(Cfg, ["seed"])
    with pytest.raises(ValueError, match=r"'seed=1.5': Cfg.seed is int, found '1.5'"):
        field_overrides(Cfg, ["seed=1.5"])
    with pytest.raises(ValueError, match=r"'flat=yes': Cfg.flat is bool, found 'yes'"):
        field_overrides(Cfg, ["flat=yes"])


def test_offpolicy_config_graph_trains_from_the_buffer_given():
    from torch import nn

    from streamrl.ops import Learner
    from streamrl.train import OffPolicyConfig

    config = OffPolicyConfig(env_name="Pendulum-v1", frames=100, frames_per_batch=50,
                             batch_size=8, learning_starts=50, logger="none")
    policy = nn.Linear(3, 1)
    learner = Learner(policy, torch.optim.SGD(policy.parameters(), lr=0.1))
    parts = dict(saved={}, state=None, run_dir=None, progress=False, columns=None)
    buffer = config.make_buffer()
    assert config.graph("given", policy, learner, buffer=buffer, **parts).buffer is buffer
    made = config.graph("made", policy, learner, **parts).buffer
    assert made is not buffer and made.rate_limiter is not None
