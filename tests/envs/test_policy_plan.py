"""Policies of plain TensorDictModules run on tensors (``streamrl._utils.tensor_plan``) inside the
buffered stepping loop: the same calls, the same data as the TensorDict loop, and every policy
whose call does more keeps the TensorDict call."""

from __future__ import annotations

import pytest
import torch
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictSequential,
    set_skip_existing,
)
from torch import nn

from streamrl._utils.tensor_plan import run_plan, tensor_plan
from streamrl.envs import SerialEnv, stepping
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.stepping import run_steps


def cartpole():
    return GymEnv("CartPole-v1", categorical_action_encoding=True)


class Scores(nn.Module):
    def __init__(self, n_in: int = 4, n_out: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(n_in, n_out)

    def forward(self, obs):
        return self.lin(obs)


class Memory(nn.Module):
    """Reads its own output of the step before (carried by step_mdp) and writes it again."""

    def forward(self, scores, memory):
        memory = 0.5 * memory + scores
        return memory.argmax(-1), memory


def argmax_policy():
    return TensorDictSequential(
        TensorDictModule(Scores(), in_keys=["observation"], out_keys=["scores"]),
        TensorDictModule(lambda s: s.argmax(-1), in_keys=["scores"], out_keys=["action"]),
    )


def memory_policy():
    return TensorDictSequential(
        TensorDictModule(Scores(), in_keys=["observation"], out_keys=["scores"]),
        TensorDictModule(Memory(), in_keys=["scores", "memory"], out_keys=["action", "memory"]),
    )


@pytest.fixture
def plan_runs(monkeypatch):
    """How many times the buffered loop switched to the plan."""
    runs = []
    real = stepping._run_plan_steps
    monkeypatch.setattr(stepping, "_run_plan_steps", lambda *a: runs.append(1) or real(*a))
    return runs


def both_loops(make_env, policy, T, *, reset_extra=None, **kwargs):
    """``run_steps`` buffered (plan) and plain (TensorDict per step) from the same seed."""
    outs = []
    for buffered in (True, False):
        with make_env() as env, torch.no_grad():
            env.set_seed(3)
            torch.manual_seed(3)  # a sampling policy draws from torch's generator
            root = env.reset()
            if reset_extra is not None:
                root.update(reset_extra(env))
            outs.append(run_steps(env, root, T, policy, buffered=buffered, **kwargs))
    return outs


def assert_same(a, b):
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    for key in a.keys(True, True):
        x, y = a.get(key), b.get(key)
        assert x.dtype == y.dtype and x.shape == y.shape, key
        assert torch.equal(x, y), key


# ------------------------------------------------------------------ what gets a plan
def test_a_module_and_a_sequence_get_their_steps_in_order():
    plan = tensor_plan(memory_policy())
    assert [(ins, outs) for _, ins, outs in plan] == [
        (("observation",), ("scores",)), (("scores", "memory"), ("action", "memory"))]


@pytest.mark.parametrize("case", ["forward hook", "pre hook", "kwargs in_keys", "nested key",
                                  "sampler with num_samples", "sampler with a generator",
                                  "composite", "not a module", "selected out keys"])
def test_policies_whose_call_does_more_get_no_plan(case):
    module = TensorDictModule(Scores(), in_keys=["observation"], out_keys=["action"])
    if case == "forward hook":
        module.register_forward_hook(lambda *a: None)
        policy = module
    elif case == "pre hook":
        policy = TensorDictSequential(module)
        policy.register_forward_pre_hook(lambda *a: None)
    elif case == "kwargs in_keys":
        policy = TensorDictModule(Scores(), in_keys={"observation": "obs"}, out_keys=["action"])
    elif case == "nested key":
        policy = TensorDictModule(Scores(), in_keys=[("agent", "obs")], out_keys=["action"])
    elif case.startswith("sampler"):
        extra = ({"num_samples": 3} if "num_samples" in case
                 else {"generator": torch.Generator().manual_seed(0)})
        policy = ProbabilisticTensorDictSequential(
            TensorDictModule(Scores(), in_keys=["observation"], out_keys=["logits"]),
            ProbabilisticTensorDictModule(in_keys=["logits"], out_keys=["action"],
                                          distribution_class=torch.distributions.Categorical,
                                          **extra),
        )
    elif case == "composite":
        policy = ProbabilisticTensorDictSequential(
            TensorDictModule(Scores(), in_keys=["observation"], out_keys=["logits"]),
            ProbabilisticTensorDictModule(in_keys=["logits"], out_keys=["action"],
                                          distribution_class=torch.distributions.Categorical),
            return_composite=True,
        )
    elif case == "not a module":
        policy = lambda td: td  # noqa: E731
    else:
        policy = TensorDictSequential(module, selected_out_keys=["action"])
    assert tensor_plan(policy) is None


def test_skip_existing_mode_gets_no_plan():
    with set_skip_existing(True):
        assert tensor_plan(argmax_policy()) is None
    assert tensor_plan(argmax_policy()) is not None


def test_run_plan_writes_like_the_module():
    plan = tensor_plan(TensorDictModule(lambda x: {"a": x + 1, "b": x * 2}, in_keys=["x"],
                                        out_keys=["b", "a"]))
    out = run_plan(plan, {"x": torch.ones(2)})
    assert torch.equal(out["a"], torch.full((2,), 2.0)) and torch.equal(out["b"], out["a"])
    plan = tensor_plan(TensorDictModule(lambda x: (x, x), in_keys=["x"], out_keys=["y"]))
    with pytest.raises(RuntimeError, match="more tensors"):
        run_plan(plan, {"x": torch.ones(2)})
    plan = tensor_plan(TensorDictModule(lambda x: x, in_keys=["x"], out_keys=["y", "z"]))
    with pytest.raises(RuntimeError, match="more out_keys than tensors"):
        run_plan(plan, {"x": torch.ones(2)})


def categorical_actor(**kwargs):
    from streamrl.modules import OneHotCategorical, ProbabilisticActor

    env = GymEnv("CartPole-v1")
    spec = env.action_spec
    env.close()
    return ProbabilisticActor(
        TensorDictModule(Scores(), in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"], distribution_class=OneHotCategorical, spec=spec, **kwargs)


def tanh_actor(**kwargs):
    from tensordict.nn import NormalParamExtractor

    from streamrl.modules import ProbabilisticActor, TanhNormal

    return ProbabilisticActor(
        TensorDictModule(nn.Sequential(Scores(3, 2), NormalParamExtractor()),
                         in_keys=["observation"], out_keys=["loc", "scale"]),
        distribution_class=TanhNormal,
        distribution_kwargs={"low": torch.tensor([-2.0]), "high": torch.tensor([2.0])},
        **kwargs)


@pytest.mark.parametrize("interaction", [None, "random", "mode", "deterministic", "mean"])
@pytest.mark.parametrize("make, n_obs", [
    (lambda: categorical_actor(return_log_prob=True, safe=True), 4),
    (lambda: categorical_actor(return_log_prob=False), 4),
    (lambda: tanh_actor(return_log_prob=True), 3),
    (lambda: tanh_actor(return_log_prob=False), 3),
], ids=["onehot-logprob-safe", "onehot", "tanh-logprob", "tanh"])
def test_a_probabilistic_actor_plan_draws_what_its_call_draws(make, n_obs, interaction):
    import contextlib

    from tensordict import TensorDict
    from tensordict.nn import InteractionType, set_interaction_type

    actor = make()
    plan = tensor_plan(actor)
    assert plan is not None
    if interaction == "mean" and n_obs == 4:
        pytest.skip("a one-hot categorical has a mean that is not a sample")
    obs = torch.randn(5, n_obs)
    ctx = (contextlib.nullcontext() if interaction is None
           else set_interaction_type(InteractionType(interaction)))
    with torch.no_grad(), ctx:
        torch.manual_seed(1)
        ref = actor(TensorDict({"observation": obs}, [5]))
        torch.manual_seed(1)
        got = run_plan(plan, {"observation": obs})
    assert set(got) == set(ref.keys())
    for key in got:
        assert got[key].dtype == ref[key].dtype and torch.equal(got[key], ref[key]), key


def test_a_probabilistic_actor_rollout_matches_the_td_loop(plan_runs):
    def make():
        return SerialEnv(3, lambda: GymEnv("CartPole-v1"))

    (batch, root), (ref, ref_root) = both_loops(
        make, categorical_actor(return_log_prob=True, safe=True), 60)
    assert {"logits", "action_log_prob"} <= set(batch.keys())
    assert_same(batch, ref)
    assert_same(root, ref_root)
    assert len(plan_runs) == 1


def test_a_safe_actor_projects_in_its_plan():
    actor = categorical_actor(safe=True)
    keys = [outs for _, _, outs in tensor_plan(actor)]
    assert keys[-1] == ("action",)  # the projection step, after the draw
    out = run_plan(tensor_plan(actor), {"observation": torch.randn(4)})
    assert out["action"].dtype == actor.spec["action"].dtype  # one-hot floats -> the spec's


# ------------------------------------------------------------------ same data as the TD loop
@pytest.mark.parametrize("make_env", [cartpole, lambda: SerialEnv(3, cartpole)],
                         ids=["gym", "serial"])
def test_a_sequence_with_an_intermediate_key_matches_the_td_loop(make_env, plan_runs):
    (batch, root), (ref, ref_root) = both_loops(make_env, argmax_policy(), 80)
    assert "scores" in batch.keys()
    assert_same(batch, ref)
    assert_same(root, ref_root)
    assert int(batch["next", "done"].sum()) > 0  # resets inside the run
    assert len(plan_runs) == 1



def test_a_policy_reading_its_own_carried_output_matches_the_td_loop(plan_runs):
    def memory(env):
        return {"memory": torch.zeros((*env.batch_size, 2))}

    (batch, root), (ref, ref_root) = both_loops(cartpole, memory_policy(), 60, reset_extra=memory)
    assert_same(batch, ref)
    assert_same(root, ref_root)
    assert not torch.equal(batch["memory"][1], batch["memory"][2])
    assert len(plan_runs) == 1



@pytest.mark.parametrize("make_env", [cartpole, lambda: SerialEnv(3, cartpole)],
                         ids=["gym", "serial"])
def test_breaking_on_done_matches_the_td_loop(make_env, plan_runs):
    (batch, root), (ref, ref_root) = both_loops(make_env, argmax_policy(), 500,
                                                break_when_any_done=True)
    assert batch.shape[-1] < 500 and bool(batch["next", "done"][..., -1, :].any())
    assert_same(batch, ref)
    assert_same(root, ref_root)
    assert len(plan_runs) == 1



def test_projected_continuous_actions_match_the_td_loop(plan_runs):
    def make():
        return GymEnv("Pendulum-v1")

    policy = TensorDictModule(lambda o: 10 * o[..., :1], in_keys=["observation"],
                              out_keys=["action"])  # far out of [-2, 2]: clamped
    (batch, root), (ref, ref_root) = both_loops(make, policy, 30, project_actions=True)
    assert batch["action"].abs().max() == 2.0
    assert_same(batch, ref)
    assert_same(root, ref_root)
    assert len(plan_runs) == 1



def test_an_out_of_spec_action_after_the_first_step_is_refused():
    calls = []

    def act(obs):
        calls.append(1)
        return torch.tensor(7 if len(calls) == 4 else 0)

    policy = TensorDictModule(act, in_keys=["observation"], out_keys=["action"])
    with cartpole() as env, pytest.raises(ValueError, match="out of the action spec"):
        run_steps(env, env.reset(), 10, policy)
    assert len(calls) == 4


def test_a_hooked_policy_keeps_its_hook_on_every_step(plan_runs):
    calls = []
    policy = argmax_policy()
    policy.register_forward_hook(lambda *a: calls.append(1))
    (batch, _), (ref, _) = both_loops(cartpole, policy, 20)
    assert len(calls) == 40  # 20 steps in each loop
    assert_same(batch, ref)
    assert len(plan_runs) == 0


def _qvalue_cases():
    from streamrl.data import MultiOneHot, OneHot
    from streamrl.modules import QValueActor, QValueModule

    torch.manual_seed(0)
    return {
        "one_hot": QValueActor(nn.Linear(4, 3), spec=OneHot(3)),
        "categorical_no_spec": QValueActor(nn.Linear(4, 3), action_space="categorical"),
        "mult_one_hot": QValueActor(nn.Linear(4, 5), spec=MultiOneHot([2, 3])),
        "masked": QValueActor(nn.Linear(4, 3), action_space="one_hot",
                              action_mask_key="action_mask"),
        "renamed_values": TensorDictSequential(
            TensorDictModule(nn.Linear(4, 3), ["observation"], ["q"]),
            QValueModule("one_hot", action_value_key="q",
                         out_keys=["action", "values_out", "chosen_action_value"])),
    }


@pytest.mark.parametrize("name", list(_qvalue_cases()))
def test_a_qvalue_actor_plan_writes_what_its_call_writes(name):
    from tensordict import TensorDict

    actor = _qvalue_cases()[name]
    plan = tensor_plan(actor)
    assert plan is not None
    obs = torch.randn(6, 4)
    mask = torch.tensor([[True, False, True]] * 3 + [[False, True, False]] * 3)
    td = TensorDict({"observation": obs, "action_mask": mask}, [6])
    expected = actor(td.clone())
    vals = run_plan(plan, {"observation": obs, "action_mask": mask})
    written = [k for k in expected.keys() if k not in ("observation", "action_mask")]
    assert sorted(written) == sorted(k for k in vals if k not in ("observation", "action_mask"))
    for key in written:
        assert vals[key].dtype == expected[key].dtype, key
        assert torch.equal(vals[key], expected[key]), key
    if name == "masked":
        assert not (vals["action"].bool() & ~mask).any()


def test_a_qvalue_actor_with_an_index_action_spec_gets_no_plan():
    # its action's unit dim depends on the TensorDict's batch size: the call keeps it
    from streamrl.data import Categorical
    from streamrl.modules import QValueActor

    assert tensor_plan(QValueActor(nn.Linear(4, 3), spec=Categorical(3))) is None


@pytest.mark.parametrize("masked", [False, True])
def test_an_egreedy_policy_plan_draws_what_its_call_draws(masked):
    from tensordict import TensorDict

    from streamrl.data import OneHot
    from streamrl.envs.utils import ExplorationType, set_exploration_type
    from streamrl.modules import EGreedyModule, QValueActor

    torch.manual_seed(0)
    spec = OneHot(3)
    mask_key = "action_mask" if masked else None
    policy = TensorDictSequential(
        QValueActor(nn.Linear(4, 3), spec=spec, action_mask_key=mask_key),
        EGreedyModule(spec, eps_init=0.5, eps_end=0.5, action_mask_key=mask_key))
    plan = tensor_plan(policy)
    assert plan is not None
    obs = torch.randn(64, 4)
    mask = torch.rand(64, 3) > 0.3
    mask[:, 0] = True
    inputs = {"observation": obs, **({"action_mask": mask} if masked else {})}
    for mode, greedy_only in ((ExplorationType.RANDOM, False),
                              (ExplorationType.DETERMINISTIC, True)):
        with set_exploration_type(mode):
            torch.manual_seed(1)
            expected = policy(TensorDict(dict(inputs), [64]))["action"]
            torch.manual_seed(1)
            got = run_plan(plan, dict(inputs))["action"]
        assert torch.equal(got, expected) and got.dtype == expected.dtype
        greedy = policy[0](TensorDict(dict(inputs), [64]))["action"]
        assert torch.equal(got, greedy) == greedy_only
        if masked:
            assert not (got.bool() & ~mask).any()


def test_an_egreedy_module_over_index_actions_gets_no_plan():
    from streamrl.data import Categorical
    from streamrl.modules import EGreedyModule

    assert tensor_plan(EGreedyModule(Categorical(3))) is None
