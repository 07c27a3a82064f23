"""ParallelEnv's per-step channel (semaphores + a shared command slot): same results as the
pipes and SerialEnv, switching back and forth, errors, dead workers, shutdown."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import Bounded, Composite, Unbounded
from streamrl.envs import EnvBase, ParallelEnv, SerialEnv, StepBuffers
from streamrl.envs.libs.gym import GymEnv
from streamrl.errors import RemoteError, WorkerDiedError


class FailingEnv(EnvBase):
    """count += action; the second step after a reset raises (no fast array protocol)."""

    def __init__(self):
        super().__init__()
        self.observation_spec = Composite(count=Unbounded((1,)))
        self.action_spec = Bounded(-1.0, 1.0, (1,))
        self.count, self.steps = torch.zeros(1), 0

    def _set_seed(self, seed):
        pass

    def _reset(self, td):
        self.count, self.steps = torch.zeros(1), 0
        return TensorDict({"count": self.count.clone()}, [])

    def _step(self, td):
        self.steps += 1
        if self.steps >= 2:
            raise RuntimeError("boom in sub-env")
        self.count = self.count + td["action"]
        false = torch.zeros(1, dtype=torch.bool)
        return TensorDict(
            {"count": self.count.clone(), "reward": td["action"].clone(), "done": false,
             "terminated": false.clone(), "truncated": false.clone()},
            [],
        )


def cartpole():
    return GymEnv("CartPole-v1", categorical_action_encoding=True)  # index actions


def script(env) -> list:
    """Steps, partial resets and pipe-only calls (seeding, random rollouts) interleaved."""
    out = []
    env.set_seed(7)
    td = env.reset()
    for t in range(25):
        td.set("action", torch.tensor([t % 2, (t // 3) % 2]))
        stepped, td = env.step_and_maybe_reset(td)
        out.append(stepped.clone())
        if t == 10:
            mask = torch.tensor([[False], [True]])
            td = env.reset(TensorDict({"_reset": mask}, batch_size=[2]))
            out.append(td.clone())
        if t == 15:
            env.set_seed(3)  # a pipe call in between
            torch.manual_seed(0)
            out.append(env.rollout(20, break_when_any_done=False))
            td = env.reset()
    return out


def test_channel_matches_serial_env_across_pipe_calls():
    with ParallelEnv(2, cartpole) as par, SerialEnv(2, cartpole) as ser:
        a, b = script(par), script(ser)
        assert par._channels is not None  # the default start method on Linux is fork
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert (x == y).all()


def test_step_into_matches_serial_env():
    with ParallelEnv(2, cartpole) as par, SerialEnv(2, cartpole) as ser:
        bufs = {}
        for env in (par, ser):
            env.set_seed(1)
            first = env.reset()
            bufs[env] = env.step_buffers(30)
            assert isinstance(bufs[env], StepBuffers)
            bufs[env].root["observation"][:, 0] = first["observation"]
        assert bufs[par].shared and not bufs[ser].shared
        for t in range(30):
            action = torch.tensor([1, int(t % 5 == 0)])  # falls over: resets
            for env in (par, ser):
                bufs[env].action[:, t] = action
                assert env.step_into(bufs[env], t) == 1
        flags = {k: torch.zeros(2, 1, dtype=torch.bool) for k in ("done", "terminated", "truncated")}
        assert (bufs[par].to_tensordict(30, flags) == bufs[ser].to_tensordict(30, flags)).all()
        for k in bufs[par].root:
            assert torch.equal(bufs[par].root[k], bufs[ser].root[k])
        keep = TensorDict({"_reset": torch.zeros(2, 1, dtype=torch.bool)}, [2])
        assert (par.reset(keep.clone()) == ser.reset(keep.clone())).all()
        assert int(bufs[par].terminated.sum()) > 0  # resets happened inside the batch
        # the shared buffers are the workers': others are refused
        with pytest.raises(ValueError, match="its own step_buffers"):
            par.step_into(bufs[ser], 0)


def test_error_in_a_command_is_reported_and_the_env_stays_usable():
    with ParallelEnv(2, FailingEnv) as env:
        td = env.reset()
        td.set("action", torch.ones(2, 1))
        env.step(td)
        td = env.reset()
        td.set("action", torch.ones(2, 1))
        env.step(td)
        with pytest.raises(RemoteError, match="boom in sub-env"):
            env.step(td)
        assert not any(env._serving)  # both left the command loop (one failed, one stopped)
        out = env.reset()  # channel again, after the failure
        assert out.get("count").shape == (2, 1)


@pytest.mark.timeout(30)
def test_worker_killed_while_serving_raises_quickly():
    env = ParallelEnv(2, cartpole)
    td = env.reset()
    env.rand_step(td)
    assert all(env._serving)
    pids = env.worker_pids
    os.kill(pids[0], signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(WorkerDiedError, match="ParallelEnv-0"):
        env.rand_step(env.reset())
    assert time.monotonic() - t0 < 5
    assert env.is_closed
    time.sleep(0.2)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.timeout(30)
def test_close_while_serving_is_quick_and_stops_the_workers():
    env = ParallelEnv(2, cartpole)
    env.rand_step(env.reset())
    pids = env.worker_pids
    t0 = time.monotonic()
    env.close()
    assert time.monotonic() - t0 < 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_spin_wait_does_not_change_results_and_is_validated():
    outs = []
    for spin in (0, 1e-3):
        with ParallelEnv(2, cartpole, spin_wait=spin) as env:
            assert env.spin_wait == spin
            outs.append(script(env))
    for x, y in zip(*outs, strict=True):
        assert (x == y).all()
    for bad in (-1, "fast", True):
        with pytest.raises(ValueError, match="spin_wait"):
            ParallelEnv(2, cartpole, spin_wait=bad)
