"""streamrl.checkpoint: whole-run checkpoints, all or nothing; rotation; global RNG state."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from streamrl.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointRotation,
    GlobalRNGState,
)
from streamrl.train import load_checkpoint, save_checkpoint


class Counter:
    def __init__(self, n=0):
        self.n = n

    def state_dict(self):
        return {"n": self.n}

    def load_state_dict(self, state):
        self.n = state["n"]


def _run(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    return net, opt


def test_round_trip_restores_every_component(tmp_path):
    net, opt = _run(0)
    counter = Counter(5)
    path = Checkpoint(net=net, opt=opt, counter=counter, match={"pipeline": "p"}).save(
        tmp_path / "c.pt", metadata={"frames": 10})
    net2, opt2 = _run(1)
    counter2 = Counter()
    result = Checkpoint(net=net2, opt=opt2, counter=counter2, match={"pipeline": "p"}).load(path)
    assert result.loaded == {"net", "opt", "counter"} and not result.missing
    assert result.values == {"pipeline": "p"}
    assert result.manifest["metadata"] == {"frames": 10}
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"],
                       opt2.state_dict()["state"][0]["exp_avg"])
    assert counter2.n == 5
    # plain data: the file reads with weights_only=True, components at the top level
    assert set(load_checkpoint(path)) == {"checkpoint", "pipeline", "net", "opt", "counter"}
    assert Checkpoint.is_checkpoint(path) and Checkpoint.manifest(path)["components"] == [
        "net", "opt", "counter"]


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def test_another_config_is_refused_before_anything_loads(tmp_path):
    net, _ = _run(0)
    counter = Counter(3)
    path = Checkpoint(net=net, counter=counter, match={"config": {"lr": 0.1, "seed": 0}}).save(
        tmp_path / "c.pt")
    net2, _ = _run(1)
    before, counter2 = _params(net2), Counter(1)
    ckpt = Checkpoint(net=net2, counter=counter2, match={"config": {"lr": 0.2, "seed": 0}})
    with pytest.raises(CheckpointError, match=r"'config' does not match this run: lr: expected "
                                              r"0\.2, found 0\.1") as info:
        ckpt.load(path)
    assert info.value.result.values == {"config": {"lr": 0.1, "seed": 0}}
    assert all(torch.equal(a, b) for a, b in zip(before, net2.parameters()))
    assert counter2.n == 1
    # strict="ignore" does not lift the identity check
    with pytest.raises(CheckpointError, match="does not match"):
        ckpt.load(path, strict="ignore")
    with pytest.raises(CheckpointError, match="has no 'pipeline'"):
        Checkpoint(net=net2, match={"pipeline": "x"}).load(path)


def test_misfitting_or_missing_components_load_nothing(tmp_path):
    net, _ = _run(0)
    path = Checkpoint(net=net, counter=Counter(3)).save(tmp_path / "c.pt")
    wide, later = torch.nn.Linear(4, 2), Counter(1)
    before = _params(wide)
    ckpt = Checkpoint(counter=later, net=wide, extra=Counter())
    with pytest.raises(CheckpointError, match=r"missing \['extra'\]; 'net': weight: expected "
                                              r"shape \(2, 4\), found \(2, 3\)\); nothing was "
                                              "loaded") as info:
        ckpt.load(path)
    assert info.value.result.incompatible.keys() == {"net"}
    assert later.n == 1 and all(torch.equal(a, b) for a, b in zip(before, wide.parameters()))
    with pytest.warns(Warning, match="does not fit this run"):
        result = ckpt.load(path, strict="warn")
    assert result.loaded == {"counter"} and result.missing == {"extra"} and later.n == 3
    assert ckpt.load(path, components=["counter"]).unrequested == {"net"}


def test_optimizer_of_other_parameters_is_refused(tmp_path):
    _, opt = _run(0)
    path = Checkpoint(opt=opt).save(tmp_path / "c.pt")
    other = torch.optim.Adam([torch.nn.Parameter(torch.ones(1))])
    with pytest.raises(CheckpointError, match=r"parameters per group: expected \[1\], found "
                                              r"\[2\]"):
        Checkpoint(opt=other).load(path)


def test_a_file_of_something_else_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "old.pt", {"pipeline": "dqn", "frames": 0})
    with pytest.raises(CheckpointError, match=r"is not a streamrl\.checkpoint file"):
        Checkpoint(counter=Counter()).load(path)
    assert not Checkpoint.is_checkpoint(path)
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        Checkpoint(counter=Counter()).load(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        Checkpoint(counter=Counter()).load(tmp_path / "missing.pt")


def test_bad_registrations_and_arguments(tmp_path):
    with pytest.raises(TypeError, match="has no state_dict"):
        Checkpoint(frames=10)
    with pytest.raises(TypeError, match="JSON-like"):
        Checkpoint(match={"config": object()})
    with pytest.raises(ValueError, match="reserved"):
        Checkpoint(checkpoint=Counter())
    with pytest.raises(ValueError, match="already registered"):
        Checkpoint(match={"a": 1}, a=Counter())
    with pytest.raises(ValueError, match="strict must be one of"):
        Checkpoint(strict="maybe")
    ckpt = Checkpoint(a=Counter())
    with pytest.raises(ValueError, match=r"unknown components \['b'\]"):
        ckpt.save(tmp_path / "c.pt", components=["b"])


def test_failing_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    counter = Counter(1)
    ckpt = Checkpoint(counter=counter)
    path = ckpt.save(tmp_path / "c.pt")
    counter.n = object()  # not plain data: refused before the file is touched
    with pytest.raises(TypeError, match="has type object"):
        ckpt.save(path)
    counter.n = 2

    def broken(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save(path)
    monkeypatch.undo()
    assert load_checkpoint(path)["counter"] == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_snapshot_saves_the_state_it_was_taken_at(tmp_path):
    net, _ = _run(0)
    ckpt = Checkpoint(net=net)
    kept, then = ckpt.snapshot(), net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    path = ckpt.save(tmp_path / "c.pt", snapshot=kept)
    assert torch.equal(load_checkpoint(path)["net"]["weight"], then)


def test_global_rng_state_round_trip():
    rng = GlobalRNGState()
    state = rng.state_dict()
    draws = (random.random(), float(np.random.rand()), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(3)
    rng.load_state_dict(state)
    again = (random.random(), float(np.random.rand()), torch.rand(3))
    assert draws[:2] == again[:2] and torch.equal(draws[2], again[2])


def test_global_rng_state_through_a_file(tmp_path):
    path = Checkpoint(rng=GlobalRNGState()).save(tmp_path / "c.pt")
    a = (random.random(), np.random.randint(1 << 30), torch.randint(1 << 30, (2,)))
    Checkpoint(rng=GlobalRNGState()).load(path)
    b = (random.random(), np.random.randint(1 << 30), torch.randint(1 << 30, (2,)))
    assert a[:2] == b[:2] and torch.equal(a[2], b[2])


def test_bad_rng_state_changes_nothing():
    rng = GlobalRNGState()
    state = rng.state_dict()
    with pytest.raises(ValueError, match="expected keys"):
        rng.load_state_dict({"python": state["python"]})
    with pytest.raises(ValueError, match="uint8 tensor"):
        rng.load_state_dict({**state, "torch_cpu": torch.zeros(3)})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="generators of 1 CUDA devices, this process "
                                             "sees 0"):
            rng.load_state_dict({**state, "torch_cuda": [torch.zeros(3, dtype=torch.uint8)]})
    a = torch.rand(2)
    rng.load_state_dict(state)
    assert torch.equal(torch.rand(2), a)


def test_rotation_keeps_the_last_k(tmp_path):
    rotation = CheckpointRotation(tmp_path / "ckpts", keep_last=2)
    assert rotation.latest() is None and rotation.checkpoints() == ()
    with pytest.raises(CheckpointError, match="no checkpoint-"):
        rotation.load_latest(Checkpoint(c=Counter()))
    counter = Counter()
    ckpt = Checkpoint(c=counter)
    for step in (5, 100, 40):
        counter.n = step
        rotation.save(ckpt, step=step, metadata={"note": "x"})
    assert [p.name for p in rotation.checkpoints()] == ["checkpoint-000000000040.pt",
                                                        "checkpoint-000000000100.pt"]
    fresh = Counter()
    result = rotation.load_latest(Checkpoint(c=fresh))
    assert fresh.n == 100 and result.manifest["metadata"] == {"note": "x", "step": 100}
    with pytest.raises(ValueError, match="keep_last must be a positive int"):
        CheckpointRotation(tmp_path, keep_last=0)
    with pytest.raises(ValueError, match="step must be a non-negative int"):
        rotation.save(ckpt, step=-1)
