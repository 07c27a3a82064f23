"""split_trajectories, RandomPolicy and TorchRL 0.14's collector names."""

import pytest
import torch
from tensordict import TensorDict

import streamrl.collectors as collectors
from streamrl.collectors import Collector, RandomPolicy, split_trajectories
from streamrl.data import Bounded, Categorical, Composite
from streamrl.envs import GymEnv, SerialEnv


def cartpole():
    return GymEnv("CartPole-v1", categorical_action_encoding=True)  # index actions


def test_split_by_traj_ids_pads_and_masks():
    ids = torch.tensor([[4, 4, 5, 5, 5], [6, 6, 6, 6, 7]])
    td = TensorDict(
        {"obs": torch.arange(10.0).reshape(2, 5), "flag": torch.ones(2, 5, dtype=torch.bool),
         "collector": {"traj_ids": ids}},
        [2, 5],
    )
    out = split_trajectories(td)
    assert out.batch_size == (4, 4)
    assert out["collector", "traj_ids"][:, 0].tolist() == [4, 5, 6, 7]
    assert out["collector", "mask"].sum(-1).tolist() == [2, 3, 4, 1]
    assert out["obs"][1].tolist() == [2.0, 3.0, 4.0, 0.0]
    assert not out["flag"][~out["collector", "mask"]].any()  # padding is zero/False
    # every valid step is there once, in order
    assert torch.equal(out["obs"][out["collector", "mask"]], td["obs"].reshape(-1))


def test_split_by_done_without_ids_cuts_after_done_and_at_rows():
    done = torch.tensor([[False, True, False], [False, False, False]]).unsqueeze(-1)
    td = TensorDict({"x": torch.arange(6).reshape(2, 3), "next": {"done": done}}, [2, 3])
    out = split_trajectories(td)
    assert out["mask"].sum(-1).tolist() == [2, 1, 3]
    assert out["x"][out["mask"]].tolist() == list(range(6))


def test_split_a_collector_batch_keeps_every_frame_once():
    collector = Collector(lambda: SerialEnv(2, cartpole), RandomPolicy(cartpole().action_spec.expand(2)),
                          frames_per_batch=200, total_frames=200)
    try:
        (batch,) = list(collector)
    finally:
        collector.shutdown()
    out = split_trajectories(batch)
    mask = out["collector", "mask"]
    assert int(mask.sum()) == batch.numel()
    ids = out["collector", "traj_ids"]
    assert bool((ids == ids[:, :1])[mask].all())  # one id per row
    # a trajectory ends at most once, at its last valid step
    done = out["next", "done"].squeeze(-1) & mask
    assert bool((done.sum(-1) <= 1).all())


@pytest.mark.parametrize("layout", ["plain", "group-dims", "non-tensor"])
def test_split_writes_what_padding_each_trajectory_writes(layout, monkeypatch):
    """The one-copy-per-leaf path (plain TensorDicts of tensors) and the pad-per-piece path
    (nested batch dims, non-tensor entries) give the same rows, masks, dtypes and sizes."""
    from streamrl.collectors import utils

    ids = torch.tensor([[4, 4, 5, 5, 5, 6], [7, 7, 7, 7, 8, 8]])
    td = TensorDict({"obs": torch.arange(24.0).reshape(2, 6, 2),
                     "flag": torch.arange(12).reshape(2, 6) % 3 == 0,
                     "next": {"r": torch.arange(12, dtype=torch.int64).reshape(2, 6, 1)},
                     "collector": {"traj_ids": ids}}, [2, 6])
    if layout == "group-dims":
        td["agents"] = TensorDict({"o": torch.ones(2, 6, 3, 4)}, [2, 6, 3])
    elif layout == "non-tensor":
        td["name"] = "x"
    fast = split_trajectories(td)
    monkeypatch.setattr(utils, "_scattered", lambda *args: None)
    slow = split_trajectories(td)
    assert fast.batch_size == slow.batch_size == (5, 4)
    assert sorted(map(str, fast.keys(True, True))) == sorted(map(str, slow.keys(True, True)))
    for k in fast.keys(True, True):
        a, b = fast.get(k), slow.get(k)
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and torch.equal(a, b), k
    for k in fast.keys(True):
        if isinstance(fast.get(k), TensorDict):
            assert fast.get(k).batch_size == slow.get(k).batch_size, k
    assert fast["obs"][1, :3, 0].tolist() == [4.0, 6.0, 8.0] and fast["obs"][1, 3].eq(0).all()


def test_split_errors():
    with pytest.raises(TypeError, match="expects a TensorDict"):
        split_trajectories({"a": 1})
    with pytest.raises(KeyError, match="traj_ids"):
        split_trajectories(TensorDict({"x": torch.zeros(3)}, [3]))
    with pytest.raises(ValueError, match="as_nested"):
        split_trajectories(TensorDict({"x": torch.zeros(3)}, [3]), as_nested=True)
    with pytest.raises(ValueError, match="time dim"):
        split_trajectories(TensorDict({"x": torch.zeros(())}, []))


def test_random_policy_draws_from_the_spec():
    spec = Bounded(-2.0, 2.0, (3,))
    td = RandomPolicy(spec)(TensorDict())
    assert spec.is_in(td["action"])
    comp = Composite(a=Categorical(4), b=Bounded(0.0, 1.0, (2,)))
    td = RandomPolicy(comp)(TensorDict())
    assert comp["a"].is_in(td["a"]) and comp["b"].is_in(td["b"])
    td = RandomPolicy(Categorical(3), action_key=("agent", "act"))(TensorDict())
    assert td["agent", "act"].shape == ()
    with pytest.raises(TypeError, match="TensorSpec"):
        RandomPolicy("Discrete(2)")


def test_torchrl_014_names_are_the_collectors():
    assert collectors.Collector is collectors.SyncDataCollector
    assert collectors.MultiSyncCollector is collectors.MultiSyncDataCollector
    assert collectors.MultiAsyncCollector is collectors.MultiaSyncDataCollector
    assert collectors.BaseCollector is collectors.DataCollectorBase
