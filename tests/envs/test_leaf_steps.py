"""The leaf loop (streamrl.envs._leaf_steps): an env that steps on flat dicts of tensors (a
PettingZoo wrapper) runs the plain loop's steps after the first without a TensorDict per
step, once the policy runs as a plan. The batches and roots are those of the reference
loop (a TensorDict per step, the policy called on it), entry for entry: layouts, resets,
masks, infos, state, groups, AEC turns; it is not taken where it would not hold; a bad
action at a later step is refused before the env takes it."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.envs import StepCounter, TransformedEnv
from streamrl.envs._leaf_steps import leaves_of
from streamrl.envs.stepping import run_steps

pytest.importorskip("pettingzoo")
simple_spread_v3 = pytest.importorskip("mpe2.simple_spread_v3")
simple_tag_v3 = pytest.importorskip("mpe2.simple_tag_v3")

from streamrl.envs.libs.pettingzoo import PettingZooEnv, PettingZooWrapper  # noqa: E402
from tests.envs.test_pettingzoo import _Walkers  # noqa: E402
from tests.envs.test_policy_plan_groups import group_actor  # noqa: E402


class _Argmax(nn.Module):
    def forward(self, x):
        return x.argmax(-1)


def per_group_policy(env, seed=0):
    """One small deterministic module per group writing its action: in the box for
    continuous actions, an index for discrete ones."""
    torch.manual_seed(seed)
    modules = []
    for g in env.group_map:
        n_in = env.observation_spec[g, "observation"].shape[-1]
        spec = env.full_action_spec[g, "action"]
        if spec.domain == "continuous":
            net = nn.Sequential(nn.Linear(n_in, spec.shape[-1]), nn.Sigmoid())
        else:
            net = nn.Sequential(nn.Linear(n_in, int(spec.space.n)), _Argmax())
        modules.append(TensorDictModule(net, in_keys=[(g, "observation")],
                                        out_keys=[(g, "action")]))
    return TensorDictSequential(*modules)


def spread(**kwargs):
    return PettingZooWrapper(simple_spread_v3.parallel_env(N=2, max_cycles=6, **kwargs))


CASES = {
    # name: (env factory, policy factory)
    "continuous-random": (lambda: spread(continuous_actions=True),
                          lambda env: group_actor(env, return_log_prob=True)),
    "discrete": (lambda: spread(continuous_actions=False), per_group_policy),
    "state": (lambda: PettingZooWrapper(simple_tag_v3.parallel_env(max_cycles=5),
                                        return_state=True), per_group_policy),
    "masks-infos-leaving": (lambda: PettingZooWrapper(_Walkers(leave_at=2, length=4),
                                                      use_mask=True, done_on_any=False),
                            per_group_policy),
    "aec": (lambda: PettingZooEnv("simple_spread_v3", parallel=False, use_mask=True,
                                  max_cycles=2, continuous_actions=True), per_group_policy),
}


@pytest.fixture
def leaf_calls(monkeypatch):
    """Every step the leaf loop takes."""
    calls = []
    real = PettingZooWrapper._step_leaves

    def counted(self, root):
        calls.append(1)
        return real(self, root)

    monkeypatch.setattr(PettingZooWrapper, "_step_leaves", counted)
    return calls


def runs(case, buffered, T, batches=3, break_when_any_done=False, callback=None):
    make_env, make_policy = CASES[case]
    out = []
    with make_env() as env, torch.no_grad():
        policy = make_policy(env)
        env.set_seed(5)
        torch.manual_seed(5)
        root = env.reset()
        for _ in range(batches):
            if break_when_any_done and bool(root["done"].any()):
                root = env.reset()
            batch, root = run_steps(env, root, T, policy, project_actions=True,
                                    buffered=buffered, callback=callback,
                                    break_when_any_done=break_when_any_done)
            out += [batch, root]
    return out


def assert_same(a: TensorDict, b: TensorDict) -> None:
    assert type(a) is type(b) is TensorDict
    assert a.batch_size == b.batch_size and a.device == b.device
    assert sorted(map(str, a.keys(True, True))) == sorted(map(str, b.keys(True, True)))
    for k in a.keys(True, True):
        x, y = a.get(k), b.get(k)
        assert x.dtype == y.dtype and x.shape == y.shape, k
        assert torch.equal(x, y), k
    for k in a.keys(True):
        if isinstance(a.get(k), TensorDict):
            assert a.get(k).batch_size == b.get(k).batch_size, k


@pytest.mark.parametrize("break_when_any_done", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_leaf_loop_holds_what_the_reference_loop_does(case, break_when_any_done,
                                                          leaf_calls):
    T = 9  # past the episodes' ends: resets inside a batch
    fast = runs(case, True, T, break_when_any_done=break_when_any_done)
    taken = len(leaf_calls)
    reference = runs(case, False, T, break_when_any_done=break_when_any_done)
    assert len(leaf_calls) == taken  # (the reference loop never steps on leaves)
    for a, b in zip(fast, reference, strict=True):
        assert_same(a, b)
    # every step after each batch's first ran as leaves
    batches = fast[0::2]
    assert taken == sum(b.batch_size[0] - 1 for b in batches) > 0


def test_an_episode_end_inside_the_batch_resets_as_the_reference_loop_does(leaf_calls):
    batch, root = runs("continuous-random", True, 14, batches=1)
    done = batch["next", "done"].squeeze(-1)
    assert done.tolist() == [False] * 5 + [True] + [False] * 5 + [True] + [False] * 2
    # the step after an episode's end starts from the reset observation, flags cleared
    assert not batch["done"][6].item() and not batch["agent", "done"][6].any()
    assert not torch.equal(batch["agent", "observation"][6],
                           batch["next", "agent", "observation"][5])
    # the policy's outputs of the step before are carried, as step_mdp carries them
    assert torch.equal(root["agent", "loc"], batch["agent", "loc"][-1])
    assert len(leaf_calls) == 13


def test_not_taken_with_a_callback_a_transform_or_a_policy_without_a_plan(leaf_calls):
    runs("discrete", True, 6, batches=1, callback=lambda env, td: None)
    assert not leaf_calls
    with TransformedEnv(spread(continuous_actions=False), StepCounter()) as env, \
            torch.no_grad():
        batch, _ = run_steps(env, env.reset(), 6, per_group_policy(env.base_env))
        assert batch["next", "step_count"].squeeze(-1).tolist() == [1, 2, 3, 4, 5, 6]
    assert not leaf_calls
    with spread(continuous_actions=False) as env:
        def by_hand(td):  # a plain function: no plan
            td.set(("agent", "action"), torch.zeros(2, dtype=torch.int64))
            return td
        run_steps(env, env.reset(), 6, by_hand)
    assert not leaf_calls


class _NaNAt(nn.Module):
    """Forces in the box, NaN from the ``at``-th call on."""

    def __init__(self, at):
        super().__init__()
        self.calls, self.at = 0, at

    def forward(self, obs):
        self.calls += 1
        value = torch.full((*obs.shape[:-1], 5), 0.5)
        return value.fill_(float("nan")) if self.calls >= self.at else value


def test_a_bad_action_at_a_later_step_is_refused_before_the_env_takes_it(leaf_calls):
    with spread(continuous_actions=True) as env, torch.no_grad():
        policy = TensorDictModule(_NaNAt(4), in_keys=[("agent", "observation")],
                                  out_keys=[("agent", "action")])
        with pytest.raises(ValueError, match=r"\('agent', 'action'\): action holds non-finite"):
            run_steps(env, env.reset(), 8, policy)
        assert len(leaf_calls) == 2  # steps 1 and 2 as leaves; step 3's action refused
        assert env._env.unwrapped.steps == 3


class _Drifting(PettingZooWrapper):
    """A leaf step that adds an entry the first step did not have (a broken env)."""

    def _step_leaves(self, root):
        out = super()._step_leaves(root)
        if self._env.unwrapped.steps >= 3:
            out[("agent", "extra")] = torch.zeros(2, 1)
        return out


def test_a_leaf_step_with_other_entries_than_the_first_is_named():
    with _Drifting(simple_spread_v3.parallel_env(N=2, max_cycles=6)) as env, torch.no_grad():
        with pytest.raises(RuntimeError, match=r"step 2 has other entries.*'extra'"):
            run_steps(env, env.reset(), 5, per_group_policy(env))


def test_leaves_of_flattens_dicts_and_tensordicts():
    t = torch.zeros(2)
    nested = {"a": t, "g": {"obs": t, "info": TensorDict({"s": t, "deep": {"x": t}}, [])}}
    assert list(leaves_of(nested)) == ["a", ("g", "obs"), ("g", "info", "s"),
                                       ("g", "info", "deep", "x")]
    td = TensorDict(nested, [])
    assert sorted(map(str, leaves_of(td))) == sorted(map(str, td.keys(True, True)))
