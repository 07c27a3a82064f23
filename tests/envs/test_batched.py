"""SerialEnv / ParallelEnv / EnvCreator: layout, seeds, resets, equality, errors, shutdown."""

import os
import pickle
import signal
import time

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import Bounded, Composite, Unbounded
from streamrl.envs import (
    EnvBase,
    EnvClosedError,
    EnvCreator,
    ParallelEnv,
    SerialEnv,
    StepCounter,
    TransformedEnv,
    step_mdp,
)
from streamrl.envs.libs.gym import GymEnv
from streamrl.errors import RemoteError, WorkerDiedError
from streamrl.testing import EnvContractTests


class CountingEnv(EnvBase):
    """A deterministic env without the fast array protocol: count += action, done at 5."""

    def __init__(self, limit=5, fail_at=None):
        super().__init__()
        self.observation_spec = Composite(count=Unbounded((1,)))
        self.action_spec = Bounded(-1.0, 1.0, (1,))
        self.limit, self.fail_at = limit, fail_at
        self.count = torch.zeros(1)
        self.steps = 0
        self.offset = 0.0

    def _set_seed(self, seed):
        self.offset = float(seed or 0)

    def _reset(self, td):
        self.count = torch.full((1,), self.offset)
        self.steps = 0
        return TensorDict({"count": self.count.clone()}, [])

    def _step(self, td):
        self.steps += 1
        if self.fail_at is not None and self.steps >= self.fail_at:
            raise RuntimeError("boom in sub-env")
        self.count = self.count + td["action"]
        done = torch.tensor([self.steps >= self.limit])
        return TensorDict(
            {
                "count": self.count.clone(),
                "reward": td["action"].clone(),
                "done": done,
                "terminated": done.clone(),
                "truncated": torch.zeros(1, dtype=torch.bool),
            },
            [],
        )


def make_cartpole():
    return GymEnv("CartPole-v1", categorical_action_encoding=True)  # index actions


class TestSerialContract(EnvContractTests):
    def make_env(self):
        return SerialEnv(2, make_cartpole)


class TestSerialGenericContract(EnvContractTests):
    def make_env(self):
        return SerialEnv(2, CountingEnv)


class TestParallelContract(EnvContractTests):
    def make_env(self):
        return ParallelEnv(2, make_cartpole)


class TestParallelGenericContract(EnvContractTests):
    def make_env(self):
        return ParallelEnv(2, CountingEnv)


def test_seed_layout_and_reprs():
    env = ParallelEnv(4, lambda: GymEnv("Pendulum-v1"), mp_start_method="fork")
    td = env.reset()
    assert td.batch_size == (4,)
    assert td["observation"].shape == (4, 3) and td["done"].shape == (4, 1)
    spec = env.action_spec
    assert isinstance(spec, Bounded) and spec.shape == (4, 1)
    assert spec.low.shape == (4, 1) and spec.low.is_contiguous()
    assert repr(env) == "ParallelEnv(num_workers=4, batch_size=torch.Size([4]), device=None)"
    r = env.rollout(3)
    assert r.batch_size == (4, 3) and r["next", "reward"].shape == (4, 3, 1)
    env.close()
    s = SerialEnv(3, EnvCreator(lambda: GymEnv("Pendulum-v1")))
    assert repr(s) == "SerialEnv(num_workers=3, batch_size=torch.Size([3]), device=None)"
    assert s.rollout(2).batch_size == (3, 2)
    s.close()


@pytest.mark.parametrize("stop", [False, True])
@pytest.mark.parametrize("policy", [None, "rand"])
def test_serial_and_parallel_rollouts_identical(stop, policy):
    outs = []
    for cls in (SerialEnv, ParallelEnv):
        with cls(3, make_cartpole) as env:
            assert env.set_seed(7) == 10
            torch.manual_seed(0)
            pol = env.rand_action if policy else None
            outs.append(env.rollout(80, policy=pol, break_when_any_done=stop))
    assert outs[0].shape == outs[1].shape
    assert (outs[0] == outs[1]).all()
    if not stop:
        assert outs[0]["next", "done"].any()
    else:
        assert outs[0]["next", "done"][:, -1].any()


def test_per_env_seeds_match_single_envs():
    with SerialEnv(3, make_cartpole) as env:
        env.set_seed(5)
        td = env.reset()
    for i in range(3):
        with GymEnv("CartPole-v1") as single:
            single.set_seed(5 + i)
            assert torch.equal(single.reset()["observation"], td["observation"][i])
    assert not torch.equal(td["observation"][0], td["observation"][1])


@pytest.mark.parametrize("cls", [SerialEnv, ParallelEnv])
def test_partial_reset_and_done_semantics(cls):
    with cls(2, CountingEnv) as env:
        env.set_seed(0)
        td = env.reset()
        td["action"] = torch.tensor([[1.0], [0.5]])
        for _ in range(3):
            td = env.step(td)
            td = step_mdp(td)
            td["action"] = torch.tensor([[1.0], [0.5]])
        # sub-env i is seeded with 0 + i, which CountingEnv uses as its start count
        assert td["count"].flatten().tolist() == [3.0, 2.5]
        mask = torch.tensor([[True], [False]])
        out = env.reset(TensorDict({"_reset": mask}, [2]))
        assert out["count"].flatten().tolist() == [0.0, 2.5]
        assert not out["done"].any()


@pytest.mark.parametrize("cls", [SerialEnv, ParallelEnv])
def test_rollout_resets_done_sub_envs(cls):
    with cls(2, [lambda: CountingEnv(limit=2), lambda: CountingEnv(limit=3)]) as env:
        env.set_seed(0)
        pol = lambda td: td.set("action", torch.ones(2, 1))  # noqa: E731
        r = env.rollout(6, policy=pol, break_when_any_done=False)
        assert r.shape == (2, 6)
        assert r["next", "done"][0].flatten().tolist() == [False, True] * 3
        assert r["next", "count"][0].flatten().tolist() == [1, 2, 1, 2, 1, 2]
        # the step after a done one starts from the reset observation
        assert r["count"][0].flatten().tolist() == [0, 1, 0, 1, 0, 1]
        assert r["count"][1].flatten().tolist() == [1, 2, 3, 1, 2, 3]  # seeded start: 1
        assert not r["done"].any()
        r = env.rollout(6, policy=pol, break_when_any_done=True)
        assert r.shape == (2, 2)


def test_transformed_sub_envs_in_workers():
    def make():
        return TransformedEnv(GymEnv("Pendulum-v1"), StepCounter())

    outs = []
    for cls in (SerialEnv, ParallelEnv):
        with cls(2, make) as env:
            env.set_seed(0)
            torch.manual_seed(0)
            outs.append(env.rollout(4))
    assert (outs[0] == outs[1]).all()
    assert outs[0]["next", "step_count"][:, -1].flatten().tolist() == [4, 4]


def test_bad_actions_on_batched_envs():
    with ParallelEnv(2, lambda: GymEnv("Pendulum-v1", strict_action_bounds=True)) as env:
        td = env.reset()
        assert env.strict_action_bounds
        td["action"] = torch.tensor([[0.0], [5.0]])
        with pytest.raises(ValueError, match="out of the action spec"):
            env.step(td)
        td["action"] = torch.zeros(2, 1, dtype=torch.float64)
        with pytest.raises(TypeError, match="dtype"):
            env.step(td)
        with pytest.raises(ValueError, match="batch_size"):
            env.step(TensorDict({"action": torch.zeros(3, 1)}, [3]))
    with SerialEnv(2, make_cartpole) as env:
        td = env.reset()
        td["action"] = torch.tensor([0, 2])
        with pytest.raises(ValueError, match="out of the action spec"):
            env.step(td)


def test_construction_errors():
    with pytest.raises(ValueError, match="num_workers"):
        SerialEnv(0, make_cartpole)
    with pytest.raises(ValueError, match="expected 3 env constructors"):
        SerialEnv(3, [make_cartpole, make_cartpole])
    with pytest.raises(TypeError, match="callable"):
        ParallelEnv(2, "CartPole-v1")
    with pytest.raises(ValueError, match="mp_start_method"):
        ParallelEnv(2, make_cartpole, mp_start_method="threads")
    mixed = SerialEnv(2, [make_cartpole, lambda: GymEnv("Pendulum-v1")])
    with pytest.raises(ValueError, match="identical sub-envs"):
        mixed.reset()


def test_sub_env_exception_is_reported_with_worker_name():
    with ParallelEnv(2, lambda: CountingEnv(fail_at=2)) as env:
        env.rollout(1)
        with pytest.raises(RemoteError, match="boom in sub-env") as info:
            env.rollout(3)
        assert "ParallelEnv-" in str(info.value)


@pytest.mark.timeout(30)
def test_dead_worker_raises_quickly_and_closes():
    env = ParallelEnv(2, make_cartpole)
    env.reset()
    pids = env.worker_pids
    os.kill(pids[1], signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(WorkerDiedError, match="ParallelEnv-1"):
        env.rand_step(env.reset())
    assert time.monotonic() - t0 < 5
    assert env.is_closed
    with pytest.raises(EnvClosedError):
        env.reset()
    time.sleep(0.2)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_close_stops_every_process_and_is_idempotent():
    env = ParallelEnv(3, make_cartpole)
    env.rollout(5)
    pids = env.worker_pids
    assert len(pids) == 3
    env.close()
    env.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(EnvClosedError, match="closed"):
        env.reset()
    with pytest.raises(EnvClosedError):
        env.rollout(2)
    never_started = ParallelEnv(2, make_cartpole)
    never_started.close()
    assert never_started.worker_pids == []


def test_factory_error_is_reported():
    def broken():
        raise OSError("cannot build env")

    env = ParallelEnv(2, broken)
    with pytest.raises(RemoteError, match="cannot build env"):
        env.reset()
    env.close()


def test_env_creator_pickles_lambdas():
    make = EnvCreator(lambda name: GymEnv(name), {"name": "CartPole-v1"})
    clone = pickle.loads(pickle.dumps(make))
    with clone() as env:
        assert env.env_name == "CartPole-v1"
    with pytest.raises(TypeError, match="callable"):
        EnvCreator(3)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_other_start_methods(method):
    outs = []
    for env in (
        ParallelEnv(2, EnvCreator(make_cartpole), mp_start_method=method),
        SerialEnv(2, make_cartpole),
    ):
        with env:
            env.set_seed(1)
            torch.manual_seed(0)
            outs.append(env.rollout(30, break_when_any_done=False))
    assert (outs[0] == outs[1]).all()


class SlowEnv(CountingEnv):
    def _step(self, td):
        time.sleep(30)
        return super()._step(td)


@pytest.mark.timeout(30)
def test_hung_worker_times_out():
    env = ParallelEnv(2, SlowEnv, timeout=2.0)
    td = env.reset()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="did not reply"):
        env.rand_step(td)
    assert time.monotonic() - t0 < 10
    assert env.is_closed
    for pid in env.worker_pids:  # the hung worker was terminated too
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(ValueError, match="timeout"):
        ParallelEnv(2, SlowEnv, timeout=0)


def test_pickling_batched_envs():
    make = EnvCreator(lambda: GymEnv("Pendulum-v1"))
    serial = SerialEnv(2, make)
    serial.reset()  # started: its GymEnvs travel with it
    with pickle.loads(pickle.dumps(serial)) as copy:
        assert copy.rollout(2).shape == (2, 2)
    par = ParallelEnv(2, make)
    with pickle.loads(pickle.dumps(par)) as copy:  # unstarted: starts its own workers
        assert copy.rollout(2).shape == (2, 2)
    par.reset()
    with pytest.raises(TypeError, match="started ParallelEnv"):
        pickle.dumps(par)
    par.close()
    serial.close()


def test_failed_start_can_be_retried(tmp_path):
    marker = tmp_path / "started-once"

    def flaky():  # fails until the marker file exists (works across worker processes)
        if not marker.exists():
            marker.touch()
            raise OSError("first start fails")
        return GymEnv("CartPole-v1")

    env = SerialEnv(2, flaky)
    with pytest.raises(OSError, match="first start fails"):
        env.reset()
    assert env.reset().batch_size == (2,)
    env.close()
    marker.unlink()
    par = ParallelEnv(2, flaky)
    with pytest.raises(RemoteError, match="first start fails"):
        par.reset()
    assert par.worker_pids == []
    assert par.reset().batch_size == (2,)
    assert len(par.worker_pids) == 2
    par.close()
    par = ParallelEnv(2, lambda: CountingEnv(fail_at=1))
    par.reset()
    with pytest.raises(RemoteError):
        par.rand_step(par.reset())
    assert par.reset()["count"].shape == (2, 1)  # a sub-env error leaves the env usable
    par.close()


@pytest.mark.parametrize("outer", [SerialEnv, ParallelEnv])
def test_batched_sub_envs(outer):
    def make():
        return outer(2, lambda: SerialEnv(3, make_cartpole))

    with make() as env:
        assert env.batch_size == (2, 3) and env.action_spec.shape == (2, 3)
        assert env.set_seed(10) == 16
        td = env.reset()
        r = env.rollout(20, break_when_any_done=False)
        assert r.batch_size == (2, 3, 20)
    # the six leaf envs got seeds 10..15: all initial observations differ
    obs = td["observation"].reshape(6, 4)
    assert len({tuple(o.tolist()) for o in obs}) == 6
    with GymEnv("CartPole-v1") as single:
        single.set_seed(14)  # outer 1, inner 1
        assert torch.equal(single.reset()["observation"], td["observation"][1, 1])
