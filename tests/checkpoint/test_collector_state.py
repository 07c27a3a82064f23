"""Rollout / SyncDataCollector state: a restored collector continues the saved episodes."""

from __future__ import annotations

import functools
import importlib.util

import pytest
import torch

from streamrl.checkpoint import Checkpoint, GlobalRNGState
from streamrl.collectors import SyncDataCollector
from streamrl.envs import GymEnv, SerialEnv


def _collector(seed=0):
    c = SyncDataCollector(functools.partial(SerialEnv, 3, functools.partial(GymEnv, "CartPole-v1")),
                          None, frames_per_batch=60, total_frames=-1)
    c.set_seed(seed)
    return c


def test_restored_collector_continues_identically(tmp_path):
    torch.manual_seed(0)
    original = _collector()
    it = iter(original)
    for _ in range(2):
        next(it)
    original.update_policy_weights_()
    path = Checkpoint(collector=original, rng=GlobalRNGState()).save(tmp_path / "c.pt")
    expected = [next(it) for _ in range(3)]
    original.shutdown()

    resumed = _collector(seed=123)  # the saved envs supersede the seed
    torch.manual_seed(99)
    Checkpoint(collector=resumed, rng=GlobalRNGState()).load(path)
    assert resumed.frames == 120 and resumed.policy_version == 1
    it = iter(resumed)
    got = [next(it) for _ in range(3)]
    resumed.shutdown()
    for a, b in zip(expected, got):
        assert (a == b).all()  # observations, actions, rewards, traj ids, policy versions
    assert int(got[0]["collector", "policy_version"][0, 0]) == 1


def test_state_before_iterating_and_bad_states():
    c = _collector()
    state = c.state_dict()
    assert state == {"frames": 0, "policy_version": 0,
                     "rollout": {"frames": 0, "traj_ids": None, "env_state": None}}
    with pytest.raises(ValueError, match="expected keys"):
        c.load_state_dict({"frames": 0})
    with pytest.raises(ValueError, match=r"state\['rollout'\]: expected keys"):
        c.load_state_dict({**state, "rollout": {"frames": 0}})
    c.shutdown()


def test_state_of_another_env_fails_when_the_iteration_opens():
    a = _collector()
    it = iter(a)
    next(it)
    state = a.state_dict()
    a.shutdown()
    other = SyncDataCollector(functools.partial(SerialEnv, 2, functools.partial(GymEnv, "CartPole-v1")),
                              None, frames_per_batch=60, total_frames=-1)
    other.load_state_dict(state)
    with pytest.raises(Exception, match="ran 3 envs, this one runs 2"):
        next(iter(other))
    other.shutdown()


def test_envs_whose_state_cannot_be_captured_refuse_to_save():
    c = SyncDataCollector(lambda: GymEnv("FrozenLake-v1"), None, frames_per_batch=10,
                          total_frames=-1)
    it = iter(c)
    next(it)
    with pytest.raises(NotImplementedError, match="'FrozenLake-v1' cannot be captured"):
        c.state_dict()
    c.shutdown()


def test_a_rollout_closed_mid_stream_keeps_its_envs_state():
    # the state after a run does not depend on where the rollout ran: it is captured at close
    from streamrl.ops import Rollout

    op = Rollout(functools.partial(GymEnv, "CartPole-v1"), None, frames_per_batch=8, seed=0)
    op.open()
    op.step({})
    op.close()
    state = op.state_dict()
    assert state["frames"] == 8 and state["env_state"]["traj_len"].shape == (1,)
    # a state whose env could not be captured cannot be resumed, and says why
    broken = Rollout(functools.partial(GymEnv, "CartPole-v1"), None, frames_per_batch=8)
    broken.load_state_dict({**state, "env_state": {"uncapturable": "NotImplementedError: x"}})
    with pytest.raises(NotImplementedError, match="cannot be resumed exactly"):
        broken.open()
    broken.close()


def test_a_finished_rollout_has_no_env_state():
    from streamrl.ops import Rollout

    op = Rollout(functools.partial(GymEnv, "CartPole-v1"), None, frames_per_batch=8,
                 total_frames=8, seed=0)
    op.open()
    op.step({})
    with pytest.raises(StopIteration):
        op.step({})
    op.close()
    assert op.state_dict()["env_state"] is None


def test_a_bad_collector_state_is_found_before_anything_loads(tmp_path):
    from streamrl.checkpoint import CheckpointError
    from streamrl.train import load_checkpoint, save_checkpoint

    c = _collector()
    path = Checkpoint(collector=c, net=torch.nn.Linear(1, 1)).save(tmp_path / "c.pt")
    c.shutdown()
    state = load_checkpoint(path)
    state["collector"] = {"frames": 0}
    save_checkpoint(path, state)
    net, fresh = torch.nn.Linear(1, 1), _collector()
    before = net.weight.detach().clone()
    with pytest.raises(CheckpointError, match=r"'collector': SyncDataCollector\.load_state_dict "
                                              r"expected keys"):
        Checkpoint(collector=fresh, net=net).load(path)
    assert torch.equal(net.weight, before) and fresh.frames == 0
    fresh.shutdown()


def test_a_rollout_that_failed_inside_a_batch_cannot_be_resumed():
    from streamrl.ops import Rollout

    def failing(td):
        raise RuntimeError("policy broke")

    op = Rollout(functools.partial(GymEnv, "CartPole-v1"), failing, frames_per_batch=8)
    op.open()
    with pytest.raises(RuntimeError, match="policy broke"):
        op.step({})
    op.close()
    assert op.state_dict()["env_state"] == {"uncapturable": "the rollout stopped inside a batch"}


def _vmas_env():
    from streamrl.envs.libs.vmas import VmasEnv

    return VmasEnv(scenario="navigation", num_envs=3, n_agents=2, continuous_actions=True,
                   max_steps=15, seed=0)


def _mpe_env():
    from mpe2 import simple_spread_v3

    from streamrl.envs.libs.pettingzoo import PettingZooWrapper

    return SerialEnv(2, lambda: PettingZooWrapper(simple_spread_v3.parallel_env(
        N=2, continuous_actions=True, max_cycles=15)))


@pytest.mark.parametrize("make_env", [
    pytest.param(_vmas_env, id="vmas", marks=pytest.mark.skipif(
        importlib.util.find_spec("vmas") is None, reason="needs vmas")),
    pytest.param(_mpe_env, id="mpe", marks=pytest.mark.skipif(
        importlib.util.find_spec("mpe2") is None, reason="needs mpe2")),
])
def test_a_multi_agent_collector_continues_mid_episode(make_env, tmp_path):
    """Agent groups are nested TensorDicts with their own batch size ([*batch, n_agents]):
    the carried root comes back with it, and the episodes go on where they were."""
    def collector(seed):
        c = SyncDataCollector(make_env, None, frames_per_batch=24, total_frames=-1)
        c.set_seed(seed)
        return c

    torch.manual_seed(0)
    original = collector(0)
    it = iter(original)
    next(it)  # 24 frames: every env mid-episode (15-step episodes)
    path = Checkpoint(collector=original, rng=GlobalRNGState()).save(tmp_path / "c.pt")
    expected = [next(it) for _ in range(2)]
    original.shutdown()

    resumed = collector(123)
    torch.manual_seed(99)
    Checkpoint(collector=resumed, rng=GlobalRNGState()).load(path)
    it = iter(resumed)
    got = [next(it) for _ in range(2)]
    resumed.shutdown()
    assert bool(expected[0]["next", "done"].any()), "the batches should cross an episode end"
    for a, b in zip(expected, got, strict=True):
        assert (a == b).all()
