"""ParallelEnv / SerialEnv constructor arguments of TorchRL 0.14: pin_memory,
allow_step_when_done, num_threads, num_sub_threads, daemon, shutdown_timeout."""

import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import Bounded, Composite, Unbounded
from streamrl.envs import EnvBase, ParallelEnv, SerialEnv
from streamrl.errors import RemoteError


class ProbeEnv(EnvBase):
    """Observation: the torch threads of the process it runs in; ``spawn_child`` makes its
    reset start (and join) a process of its own; ``slow_close`` makes close() sleep."""

    def __init__(self, spawn_child=False, slow_close=0.0):
        super().__init__()
        self.observation_spec = Composite(threads=Unbounded((1,)))
        self.action_spec = Bounded(-1.0, 1.0, (1,))
        self.spawn_child, self.slow_close = spawn_child, slow_close

    def _set_seed(self, seed):
        pass

    def _reset(self, td):
        if self.spawn_child:
            child = mp.get_context("fork").Process(target=int)
            child.start()
            child.join()
        return TensorDict({"threads": torch.full((1,), float(torch.get_num_threads()))}, [])

    def _step(self, td):
        out = self._reset(None)
        done = torch.zeros(1, dtype=torch.bool)
        out.update({"reward": torch.zeros(1), "done": done, "terminated": done.clone(),
                    "truncated": done.clone()})
        return out

    def _close(self):
        time.sleep(self.slow_close)


@pytest.mark.parametrize("cls", [SerialEnv, ParallelEnv])
@pytest.mark.parametrize("name", ["pin_memory", "allow_step_when_done"])
def test_deprecated_flags_take_false_only(cls, name):
    with pytest.raises(ValueError, match=name):
        cls(2, ProbeEnv, **{name: True})
    cls(2, ProbeEnv, **{name: False}).close()


def test_deprecated_flags_checked_with_serial_for_single():
    with pytest.raises(ValueError, match="pin_memory"):
        ParallelEnv(1, ProbeEnv, serial_for_single=True, pin_memory=True)


def test_num_sub_threads_sets_the_workers_threads():
    with ParallelEnv(2, ProbeEnv, num_sub_threads=2) as env:
        assert env.reset()["threads"].flatten().tolist() == [2.0, 2.0]
    with ParallelEnv(2, ProbeEnv) as env:  # default: 1
        assert env.reset()["threads"].flatten().tolist() == [1.0, 1.0]


def test_num_threads_sets_this_process_threads_at_start():
    before = torch.get_num_threads()
    try:
        env = ParallelEnv(2, ProbeEnv, num_threads=3)
        assert torch.get_num_threads() == before  # nothing before the workers start
        with env:
            env.reset()
            assert torch.get_num_threads() == 3
        with ParallelEnv(2, ProbeEnv) as env:  # default None: left as it is
            env.reset()
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_non_daemon_workers_may_start_processes():
    with ParallelEnv(2, lambda: ProbeEnv(spawn_child=True)) as env:
        with pytest.raises(RemoteError, match="daemonic"):
            env.reset()
    with ParallelEnv(2, lambda: ProbeEnv(spawn_child=True), daemon=False) as env:
        assert env.reset()["threads"].shape == (2, 1)


@pytest.mark.slow  # a fresh interpreter imports torch
def test_open_non_daemon_env_does_not_block_interpreter_exit(tmp_path):
    script = tmp_path / "leave_open.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_batched_args import ProbeEnv
        from streamrl.envs import ParallelEnv
        env = ParallelEnv(2, ProbeEnv, daemon=False, shutdown_timeout=1.0)
        env.reset()
        print(env.worker_pids)
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    for pid in eval(res.stdout.strip().splitlines()[-1]):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_shutdown_timeout_bounds_close():
    env = ParallelEnv(2, lambda: ProbeEnv(slow_close=60.0), shutdown_timeout=0.3)
    env.reset()
    t0 = time.monotonic()
    env.close()
    assert time.monotonic() - t0 < 10.0  # each worker: 0.3 s to stop, 0.3 s to join, kill
    for pid in env.worker_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"num_sub_threads": 0}, "num_sub_threads"), ({"num_threads": 1.5}, "num_threads"),
     ({"daemon": "no"}, "daemon"), ({"shutdown_timeout": -1}, "shutdown_timeout"),
     ({"shutdown_timeout": True}, "shutdown_timeout")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        ParallelEnv(2, ProbeEnv, **kwargs)
