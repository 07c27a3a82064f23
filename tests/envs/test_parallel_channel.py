"""ParallelEnv's per-step channel (semaphores + a shared command slot): same results as the
pipes and SerialEnv, switching back and forth, errors, dead workers, shutdown."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import time

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from streamrl._mp import current_cpu
from streamrl.data import Bounded, Composite, Unbounded
from streamrl.envs import EnvBase, ParallelEnv, SerialEnv, StepBuffers
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.parallel import _CommandWait
from streamrl.envs.stepping import run_steps
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


# ---------------------------------------------------------------- waiting (spin, then sleep)
needs_cpu = pytest.mark.skipif(
    current_cpu() < 0 or not hasattr(os, "sched_setaffinity"), reason="needs sched_getcpu"
)


def _release_later(sem, delay, where, seen, cpus):
    os.sched_setaffinity(0, cpus)  # off the waiter's CPU where there is another
    time.sleep(delay)
    seen.copy_(where)
    sem.release()


def _spin(cpu):
    os.sched_setaffinity(0, {cpu})
    while True:
        pass


@pytest.fixture
def one_cpu():
    """This process pinned to the CPU it is on (restored afterwards): a known CPU."""
    before = os.sched_getaffinity(0)
    cpu = current_cpu()
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def _shared_where(*values):
    return torch.tensor(values, dtype=torch.int32).share_memory_()


def _wait_with_release(waiter, where, delay):
    """``waiter.wait`` on a semaphore another process releases after ``delay`` seconds;
    returns (whether it came while polling, what ``where`` held just before)."""
    ctx = mp.get_context("fork")
    sem, seen = ctx.Semaphore(0), torch.zeros_like(where).share_memory_()
    others = set(os.sched_getaffinity(0)) if len(_ALL_CPUS) < 2 else _ALL_CPUS - {current_cpu()}
    proc = ctx.Process(target=_release_later, args=(sem, delay, where, seen, others))
    proc.start()
    try:
        got = waiter.wait(sem)
    finally:
        proc.join(10)
    return got, seen.tolist()


_ALL_CPUS = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else set()


def _waiter(index, where, spin):
    waiter = _CommandWait(index, where, spin)
    waiter.LONG_YIELD = 1.0  # other processes on this machine must not end the polls early
    return waiter


@needs_cpu
def test_a_worker_polls_on_a_cpu_of_its_own_and_publishes_it(one_cpu):
    where = _shared_where(-1, -1, -1)
    waiter = _waiter(1, where, spin=5.0)
    got, seen = _wait_with_release(waiter, where, 0.05)
    assert got  # the command came while polling
    assert seen == [-1, -1, one_cpu]  # worker 1 polled on its CPU
    assert where.tolist() == [-1, -1, -1]  # and no longer says so


@needs_cpu
@pytest.mark.parametrize("taken_by", [0, 1])  # the parent's CPU, another poller's
def test_a_worker_sleeps_where_the_parent_or_another_poller_is(one_cpu, taken_by):
    where = _shared_where(-1, -1, -1)
    where[taken_by] = one_cpu  # and no other CPU allowed to move to
    waiter = _waiter(1, where, spin=5.0)
    got, seen = _wait_with_release(waiter, where, 0.05)
    assert not got and seen[2] == -1


@needs_cpu
def test_a_poll_that_misses_makes_the_next_waits_sleep(one_cpu):
    where = _shared_where(-1, -1)
    waiter = _waiter(0, where, spin=0.01)
    got, _ = _wait_with_release(waiter, where, 0.1)  # later than the poll lasts
    assert not got and waiter.skip == 1
    got, seen = _wait_with_release(waiter, where, 0.02)  # slept through
    assert not got and seen[1] == -1 and waiter.skip == 0
    got, _ = _wait_with_release(waiter, where, 0.1)  # missed again: twice as many
    assert not got and waiter.skip == 3
    waiter.skip, waiter.spin = 0, 5.0
    assert _wait_with_release(waiter, where, 0.01)[0]  # a hit halves the penalty
    assert waiter.penalty == 1


@needs_cpu
def test_a_worker_moves_off_the_parents_cpu_to_poll():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    before = os.sched_getaffinity(0)
    # the parent, busy on the first CPU (an idle one would draw the poller back)
    parent = mp.get_context("fork").Process(target=_spin, args=(cpus[0],), daemon=True)
    parent.start()
    try:
        os.sched_setaffinity(0, {cpus[0]})
        where = _shared_where(cpus[0], -1)
        waiter = _waiter(0, where, spin=5.0)
        waiter.cpus = set(cpus[:2])
        got, seen = _wait_with_release(waiter, where, 0.05)
        assert got and seen == [cpus[0], cpus[1]]
        assert os.sched_getaffinity(0) == set(cpus[:2])  # the affinity given back
    finally:
        os.sched_setaffinity(0, before)
        parent.kill()
        parent.join()


@needs_cpu
def test_a_worker_stops_polling_where_another_process_is_busy(one_cpu):
    busy = mp.get_context("fork").Process(target=_spin, args=(one_cpu,), daemon=True)
    busy.start()
    try:
        time.sleep(0.05)
        where = _shared_where(-1, -1)
        waiter = _CommandWait(0, where, spin=5.0)
        t0 = time.monotonic()
        got, _ = _wait_with_release(waiter, where, 0.5)
        assert not got and waiter.skip == 1  # the first long yield ended the poll
        assert time.monotonic() - t0 < 2.0
    finally:
        busy.kill()
        busy.join()


def _lockstep(env, policy, steps=60):
    env.set_seed(11)
    batch, _ = run_steps(env, env.reset(), steps, policy)
    return batch


def test_lockstep_with_a_policy_matches_serial_env_whatever_the_polling():
    lin = torch.nn.Linear(4, 2)
    torch.nn.init.constant_(lin.weight, 0.3)
    policy = TensorDictModule(lambda obs: lin(obs).argmax(-1), ["observation"], ["action"])
    with SerialEnv(2, cartpole) as ser:
        ref = _lockstep(ser, policy)
    assert int(ref["next", "done"].sum()) > 0  # resets inside the run
    for spin in (0, 2e-4, 0.05):
        with ParallelEnv(2, cartpole, spin_wait=spin) as par, torch.no_grad():
            assert (_lockstep(par, policy) == ref).all()


class SlowEnv(FailingEnv):
    """Steps take ``delay`` seconds (a hung simulator, for the timeout)."""

    delay = 3.0

    def _step(self, td):
        time.sleep(self.delay)
        self.steps = 0
        return super()._step(td)


@pytest.mark.timeout(30)
def test_a_timeout_is_kept_while_the_parent_polls():
    env = ParallelEnv(2, SlowEnv, timeout=0.3, spin_wait=10.0)  # polls longer than timeout
    td = env.reset()
    td.set("action", torch.ones(2, 1))
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not reply within 0\.3 s"):
        env.step(td)
    assert time.monotonic() - t0 < 2.5
    assert env.is_closed


@pytest.mark.timeout(30)
def test_a_worker_dying_while_the_parent_polls_is_reported_at_once():
    env = ParallelEnv(2, SlowEnv, spin_wait=30.0)  # the parent would poll for 30 s
    td = env.reset()
    td.set("action", torch.ones(2, 1))
    # killed from another process: this one's threads hardly get the GIL while it polls
    killer = subprocess.Popen(["sh", "-c", f"sleep 0.3; kill -9 {env.worker_pids[0]}"])
    t0 = time.monotonic()
    with pytest.raises(WorkerDiedError, match="ParallelEnv-0"):
        env.step(td)
    assert time.monotonic() - t0 < 2.5  # not after the other worker's 3 s step
    killer.wait()
    assert env.is_closed


@pytest.mark.timeout(30)
def test_a_worker_dying_while_it_polls_for_a_command_is_reported_at_once():
    env = ParallelEnv(2, cartpole, spin_wait=30.0)  # the workers poll 30 s between steps
    env.rand_step(env.reset())
    os.kill(env.worker_pids[1], signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(WorkerDiedError, match="ParallelEnv-1"):
        env.rand_step(env.reset())
    assert time.monotonic() - t0 < 2.5
    assert env.is_closed
