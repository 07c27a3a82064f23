"""The env contract: reset, step, specs, seeding, rollout, the stepping protocol and close,
checked for any env.

Use :func:`check_env_contract` directly, or inherit :class:`EnvContractTests` in a pytest
class and define ``make_env``::

    class TestMyEnv(EnvContractTests):
        def make_env(self):
            return GymEnv("Pendulum-v1")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.envs.common import EnvClosedError
from streamrl.envs.stepping import run_steps
from streamrl.envs.utils import check_env_specs

__all__ = ["EnvContractTests", "check_env_contract"]

_FLAGS = ("done", "terminated", "truncated")


def _fail(msg: str) -> None:
    raise AssertionError(msg)


def check_reset(env: Any) -> TensorDictBase:
    """reset() returns the observations and done flags (False) with the env's batch size."""
    td = env.reset()
    if td.batch_size != env.batch_size:
        _fail(f"reset batch_size {td.batch_size} != env.batch_size {env.batch_size}")
    for key in env.full_observation_spec.keys(True, True):
        if not env.full_observation_spec[key].is_in(td.get(key)):
            _fail(f"reset: {key!r} not in its spec")
    for key in _FLAGS:
        flag = td.get(key)
        if flag.dtype != torch.bool or flag.shape != (*env.batch_size, 1):
            _fail(f"reset: {key!r} has dtype {flag.dtype} shape {tuple(flag.shape)}")
        if bool(flag.any()):
            _fail(f"reset: {key!r} is set")
    return td


def check_step(env: Any) -> None:
    """step() writes "next" with observations, rewards (each of its spec's shape, with a
    trailing dim of 1: ``[*batch, 1]``, or ``[*batch, n_agents, 1]`` for an agent group)
    and done = terminated | truncated (at the root and in any group with its own flags)."""
    td = env.rand_action(env.reset())
    # the actions are checked before the step: a step may change the spec (an action mask)
    for key in env.action_keys:
        if not env.full_action_spec[key].is_in(td.get(key)):
            _fail(f"step: the action {key!r} written by rand_action is not in its spec")
    nxt = env.step(td).get("next")
    for key in env.full_observation_spec.keys(True, True):
        if not env.full_observation_spec[key].is_in(nxt.get(key)):
            _fail(f"step: next {key!r} not in its spec")
    nb = len(env.batch_size)
    for key in env.reward_keys:
        reward, want = nxt.get(key), env.full_reward_spec[key].shape
        if reward.shape != want or want[:nb] != env.batch_size or want[-1:] != (1,):
            _fail(f"step: reward shape {tuple(reward.shape)} ({key!r}), expected its spec's "
                  f"{tuple(want)}, which starts with {tuple(env.batch_size)} and ends with 1")
    for key in env.done_keys:
        path = (key,) if isinstance(key, str) else tuple(key)
        if path[-1] != "done":
            continue
        flags = [nxt.get((*path[:-1], k), None) for k in ("terminated", "truncated")]
        if flags[0] is None or flags[1] is None:
            continue  # a group with a done flag only
        if not torch.equal(nxt.get(path), flags[0] | flags[1]):
            where = "" if len(path) == 1 else f" in group {path[:-1]!r}"
            _fail(f"step: done != terminated | truncated{where}")


def check_bad_actions(env: Any) -> None:
    """A wrong action dtype gives TypeError, a wrong shape gives ValueError (for the env's
    first action key, ``env.action_key``).

    (A discrete action given as whole-valued floats, what torch's distributions sample, is
    accepted and cast; one with fractional values is the wrong dtype.)"""
    # every action entry set (an env with several action keys, one per agent group, needs
    # them all), the first one made wrong
    td = env.rand_action(env.reset())
    key = env.action_key
    action = env.full_action_spec[key].rand()
    if action.is_floating_point():
        wrong = action.to(torch.float64 if action.dtype != torch.float64 else torch.float32)
    else:
        wrong = action.to(torch.float32) + 0.5
    td.set(key, wrong)
    try:
        env.step(td)
    except TypeError:
        pass
    else:
        _fail("step accepted an action of the wrong dtype")
    td = env.rand_action(env.reset())
    bad = torch.zeros((*action.shape, 2), dtype=action.dtype)
    try:
        td.set(key, bad)
    except RuntimeError:
        return  # the TensorDict itself refuses a wrongly batched action
    try:
        env.step(td)
    except ValueError:
        pass
    else:
        _fail("step accepted an action of the wrong shape")


def check_rollout(env: Any, steps: int = 5) -> None:
    """rollout stacks steps after the batch dims; each next step starts from "next"."""
    td = env.rollout(steps, break_when_any_done=False)
    nb = len(env.batch_size)
    if td.batch_size != (*env.batch_size, steps):
        _fail(f"rollout batch_size {td.batch_size}, expected {(*env.batch_size, steps)}")
    done = td.get(("next", "done")).squeeze(-1)
    for key in env.full_observation_spec.keys(True, True):
        root = td.get(key).movedim(nb, 0)
        nxt = td.get(("next", key) if isinstance(key, str) else ("next", *key)).movedim(nb, 0)
        keep = ~done.movedim(nb, 0)[:-1]
        same = root[1:] == nxt[:-1]
        same = same.reshape(*same.shape[: keep.ndim], -1).all(-1)
        if not bool(same[keep].all()):
            _fail(f"rollout: root {key!r} at t+1 differs from next {key!r} at t")


def check_seeding(make_env: Callable[[], Any], steps: int = 5) -> None:
    """Two envs seeded alike (and the same torch seed) give identical rollouts."""
    outs = []
    for _ in range(2):
        with make_env() as env:
            env.set_seed(0)
            torch.manual_seed(0)
            outs.append(env.rollout(steps, break_when_any_done=False))
    if not bool((outs[0] == outs[1]).all()):
        _fail("same seeds gave different rollouts")


def check_stepping(make_env: Callable[[], Any], steps: int = 40) -> None:
    """The stepping protocol (``step_into``, driven by :func:`~streamrl.envs.run_steps`)
    writes exactly what the plain loop (``step``, ``step_mdp``, ``maybe_reset``) stacks: with
    a policy step by step, and with random actions drawn up front and taken in one call;
    with and without ``break_when_any_done``; and (without it) with a policy of a TensorDict
    module, which the loops run as a plan of tensor calls after its first call (an env
    stepping on leaves takes the leaf loop then). ``steps`` should cover a few episode ends."""
    for brk in (False, True):
        for planned in (False, True) if not brk else (False,):
            runs = []
            for buffered in (True, False):
                with make_env() as env:
                    policy = _spec_draws(env) if planned else env.rand_action
                    if policy is None:
                        break
                    env.set_seed(0)
                    torch.manual_seed(0)
                    runs.append(
                        run_steps(
                            env, env.reset(), steps, policy,
                            break_when_any_done=brk, buffered=buffered,
                        )
                    )
            if not runs:
                continue
            what = (f"step by step{', the policy as a plan' if planned else ''} "
                    f"(break_when_any_done={brk})")
            _same(runs[0][0], runs[1][0], f"{what}: batch")
            _same(runs[0][1], runs[1][1], f"{what}: next root")
        # random actions drawn up front, taken in one step_into call
        with make_env() as env:
            torch.manual_seed(1)
            actions = [env.full_action_spec[env.action_key].rand() for _ in range(steps)]
            env.set_seed(0)
            torch.manual_seed(2)
            td = env.reset()
            bufs = env.step_buffers(steps)
            if bufs is None:  # this env steps with step() only
                continue
            nb = len(env.batch_size)
            for k, v in bufs.root.items():
                v[bufs.column(0)] = td.get(k)
            bufs.action.copy_(torch.stack(actions, nb))
            n = env.step_into(bufs, 0, steps, break_when_any_done=brk)
            flags0 = {k: td.get(k) for k in _FLAGS}
            in_one_call = bufs.to_tensordict(n, flags0)
            last = {k: v[bufs.column(n)].clone() for k, v in bufs.root.items()}
        with make_env() as env:
            env.set_seed(0)
            torch.manual_seed(2)
            plain, root = run_steps(
                env, env.reset(), n, _Replay(actions, env.action_key), break_when_any_done=brk,
                buffered=False,
            )
        what = f"random actions in one step_into call (break_when_any_done={brk})"
        _same(in_one_call, plain, f"{what}: batch")
        _same(TensorDict(last, batch_size=env.batch_size), root.select(*last), f"{what}: next root")


class _SpecDraws(torch.nn.Module):
    """Random actions from the action specs (the input only anchors the module's call)."""

    def __init__(self, specs: list) -> None:
        super().__init__()
        self.specs = specs

    def forward(self, anchor: torch.Tensor) -> Any:
        out = tuple(spec.rand() for spec in self.specs)
        return out if len(out) > 1 else out[0]


def _spec_draws(env: Any) -> Any:
    """A TensorDict module drawing ``env``'s actions from its specs, reading the first
    observation; None when the env has no tensor observation to read."""
    from tensordict.nn import TensorDictModule

    ins = list(env.full_observation_spec.keys(True, True))
    keys = list(env.full_action_spec.keys(True, True))
    if not ins or not keys:
        return None
    return TensorDictModule(_SpecDraws([env.full_action_spec[k] for k in keys]),
                            in_keys=ins[:1], out_keys=keys)


class _Replay:
    """A policy that takes the given actions, one per call."""

    def __init__(self, actions: tuple, key: Any = "action") -> None:
        self.actions = iter(actions)
        self.key = key

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        return td.set(self.key, next(self.actions).clone())


def _same(got: TensorDictBase, want: TensorDictBase, what: str) -> None:
    ka, kb = set(got.keys(True, True)), set(want.keys(True, True))
    if ka != kb:
        _fail(f"stepping, {what}: keys {sorted(map(str, ka ^ kb))} differ from the plain loop's")
    if got.batch_size != want.batch_size:
        _fail(f"stepping, {what}: batch size {got.batch_size} != plain loop's {want.batch_size}")
    for k in sorted(ka, key=str):
        if not torch.equal(got.get(k), want.get(k)):
            _fail(f"stepping, {what}: entry {k!r} differs from the plain loop's")


def check_close(env: Any) -> None:
    """close() is idempotent; step/reset after close raise EnvClosedError."""
    td = env.reset()
    env.close()
    env.close()
    for call in (lambda: env.reset(), lambda: env.rand_step(td)):
        try:
            call()
        except EnvClosedError:
            continue
        _fail("a closed env accepted a call")


def check_env_contract(make_env: Callable[[], Any], steps: int = 5) -> None:
    """Run every check of the contract on envs built by ``make_env``; raises
    ``AssertionError`` (or the env's own error) naming the first broken rule."""
    with make_env() as env:
        check_reset(env)
        check_step(env)
        check_env_specs(env, seed=0, steps=steps)
        check_rollout(env, steps)
        check_bad_actions(env)
    check_seeding(make_env, steps)
    check_stepping(make_env)
    check_close(make_env())


class EnvContractTests:
    """A pytest mixin: inherit it in a ``Test*`` class and define ``make_env(self)``."""

    steps = 5
    # steps of the stepping check: enough for a few episode ends
    stepping_steps = 40

    def make_env(self) -> Any:
        """Build a fresh env under test (override)."""
        raise NotImplementedError

    def test_reset(self) -> None:
        with self.make_env() as env:
            check_reset(env)

    def test_step(self) -> None:
        with self.make_env() as env:
            check_step(env)

    def test_specs(self) -> None:
        with self.make_env() as env:
            check_env_specs(env, seed=0, steps=self.steps)

    def test_rollout(self) -> None:
        with self.make_env() as env:
            check_rollout(env, self.steps)

    def test_bad_actions(self) -> None:
        with self.make_env() as env:
            check_bad_actions(env)

    def test_seeding(self) -> None:
        check_seeding(self.make_env, self.steps)

    def test_stepping_matches_the_plain_loop(self) -> None:
        check_stepping(self.make_env, self.stepping_steps)

    def test_close(self) -> None:
        check_close(self.make_env())
