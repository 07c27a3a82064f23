"""``env.rollout(policy=..., break_when_any_done=False)`` (buffered per-step collection) gives
the same data as the step-by-step loop ``step_and_maybe_reset`` + ``torch.stack``."""

from __future__ import annotations

import functools

import pytest
import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.envs import ParallelEnv, SerialEnv
from streamrl.envs.libs.gym import GymEnv


def cartpole():
    return GymEnv("CartPole-v1", categorical_action_encoding=True)  # index actions


class _Argmax(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 2)

    def forward(self, obs):
        logits = self.lin(obs)
        return logits.argmax(-1), logits


def policy():
    return TensorDictModule(_Argmax(), in_keys=["observation"], out_keys=["action", "logits"])


def reference(env, T, pol):
    """The plain per-step loop: policy, step_and_maybe_reset, stack."""
    td = env.reset()
    steps = []
    for _ in range(T):
        td = env.rand_action(td) if pol is None else pol(td)
        stepped, td = env.step_and_maybe_reset(td)
        steps.append(stepped)
    return torch.stack(steps, len(env.batch_size)), td


MAKERS = {
    "gym": cartpole,
    "serial": functools.partial(SerialEnv, 2, cartpole),
    "parallel": functools.partial(ParallelEnv, 2, cartpole),
}


@pytest.mark.parametrize("env_name", sorted(MAKERS))
@pytest.mark.parametrize("random", [False, True])
def test_rollout_with_policy_matches_the_step_loop(env_name, random):
    pol = None if random else policy()
    outs = []
    for fast in (True, False):
        with MAKERS[env_name]() as env:
            env.set_seed(5)
            torch.manual_seed(1)
            if fast:
                # a callable policy (not None) so that random actions take the per-step path
                run = env.rand_action if random else pol
                with torch.no_grad():  # as collectors run it (with grad: see below)
                    outs.append(env.rollout(60, run, break_when_any_done=False))
                follow = env.rand_step(env.reset())  # the env keeps working afterwards
            else:
                with torch.no_grad():
                    outs.append(reference(env, 60, pol)[0])
    a, b = outs
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    for key in a.keys(True, True):
        assert a.get(key).dtype == b.get(key).dtype
        assert torch.equal(a.get(key), b.get(key)), key
    assert int(a.get(("next", "done")).sum()) > 0
    assert follow.get(("next", "observation")).shape[-1] == 4


def test_rollout_with_a_policy_writing_under_next_uses_the_step_loop():
    def recurrent(td):
        td.set("action", torch.ones((), dtype=torch.int64))
        hidden = td.get("hidden", torch.zeros(3))
        td.set("hidden", hidden)
        td.set(("next", "hidden"), hidden + 1)
        return td

    with cartpole() as env:
        env.set_seed(0)
        out = env.rollout(8, recurrent, break_when_any_done=False)
        env.set_seed(0)
        ref, _ = reference(env, 8, recurrent)
    assert (out == ref).all()
    assert ("next", "hidden") in out.keys(True, True)


def test_rollout_with_policy_checks_actions():
    def bad(td):
        td.set("action", torch.full((), 7, dtype=torch.int64))
        return td

    with cartpole() as env, pytest.raises(ValueError, match="out of the action spec"):
        env.rollout(5, bad, break_when_any_done=False)
    with cartpole() as env, pytest.raises(KeyError, match="missing action key"):
        env.rollout(5, lambda td: td, break_when_any_done=False)


def test_rollout_with_grad_keeps_the_autograd_graph_like_the_step_loop():
    pol = policy()
    with cartpole() as env:
        env.set_seed(0)
        out = env.rollout(10, pol, break_when_any_done=False)
        env.set_seed(0)
        ref, _ = reference(env, 10, pol)
    assert out.get("logits").requires_grad and ref.get("logits").requires_grad
    assert torch.equal(out.get("logits").detach(), ref.get("logits").detach())


def test_a_subclass_that_changes_step_keeps_its_step():
    class Doubled(GymEnv):  # reward shaping in _step: the buffered paths must not skip it
        def _step(self, td):
            out = super()._step(td)
            out.set("reward", out.get("reward") * 2)
            return out

    with Doubled("CartPole-v1") as env, torch.no_grad():
        assert env.step_buffers(4) is not None  # buffered, through the generic step_into
        assert (env.rollout(5, env.rand_action, break_when_any_done=False)["next", "reward"] == 2).all()
        assert (env.rollout(5, break_when_any_done=False)["next", "reward"] == 2).all()
    with SerialEnv(2, lambda: Doubled("CartPole-v1")) as env:
        assert (env.rollout(5, break_when_any_done=False)["next", "reward"] == 2).all()
        assert (env.rollout(5)["next", "reward"] == 2).all()
        assert (env.rand_step(env.reset())["next", "reward"] == 2).all()
