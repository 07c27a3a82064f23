"""The plain stepping loop (envs with agent groups: nested keys) runs a policy of plain
TensorDict modules as its tensor plan after the first call: the same draws and the same data
as calling the policy on every step's TensorDict; and its steps are stacked leaf by leaf."""

from __future__ import annotations

import pytest
import torch
from tensordict import NonTensorData, TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn

from streamrl._utils.tensor_plan import tensor_plan
from streamrl.envs import stepping
from streamrl.envs.stepping import run_steps, stack_steps

pytest.importorskip("pettingzoo")
simple_spread_v3 = pytest.importorskip("mpe2.simple_spread_v3")


def spread():
    from streamrl.envs.libs.pettingzoo import PettingZooWrapper

    return PettingZooWrapper(simple_spread_v3.parallel_env(N=2, continuous_actions=True,
                                                           max_cycles=6))


def group_actor(env, **kwargs):
    from streamrl.modules import MultiAgentMLP, ProbabilisticActor, TanhNormal

    torch.manual_seed(0)
    n_act = env.full_action_spec[env.action_key].shape[-1]
    net = nn.Sequential(
        MultiAgentMLP(n_agent_inputs=env.observation_spec["agent", "observation"].shape[-1],
                      n_agent_outputs=2 * n_act, n_agents=2, centralized=False,
                      share_params=True, depth=1, num_cells=8),
        NormalParamExtractor())
    space = env.full_action_spec_unbatched[env.action_key].space
    return ProbabilisticActor(
        TensorDictModule(net, in_keys=[("agent", "observation")],
                         out_keys=[("agent", "loc"), ("agent", "scale")]),
        in_keys=[("agent", "loc"), ("agent", "scale")], out_keys=[env.action_key],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": space.low, "high": space.high}, **kwargs)


@pytest.fixture
def planned_steps(monkeypatch):
    """How many steps ran as the plan (on a TensorDict, or on leaves in the leaf loop)."""
    calls = []
    real = stepping._PlainPlan.values

    def counted(self, *args):
        calls.append(1)
        return real(self, *args)

    monkeypatch.setattr(stepping._PlainPlan, "values", counted)
    return calls


def both_loops(policy_kwargs, T, batches=2):
    """``batches`` consecutive runs of ``T`` steps, planned and the reference loop."""
    outs = []
    for buffered in (True, False):
        with spread() as env, torch.no_grad():
            policy = group_actor(env, **policy_kwargs)
            env.set_seed(3)
            torch.manual_seed(3)
            root = env.reset()
            runs = []
            for _ in range(batches):  # the second starts from a root carrying outputs
                batch, root = run_steps(env, root, T, policy, project_actions=True,
                                        buffered=buffered)
                runs.append(batch)
            outs.append(runs)
    return outs


def assert_same(a, b):
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    for key in a.keys(True, True):
        assert torch.equal(a.get(key), b.get(key)), key


@pytest.mark.parametrize("policy_kwargs", [{"return_log_prob": True}, {}],
                         ids=["log-prob", "action-only"])
def test_a_group_actor_plan_draws_and_writes_what_the_td_loop_does(policy_kwargs,
                                                                   planned_steps):
    planned, reference = both_loops(policy_kwargs, T=9)  # resets inside (6 steps an episode)
    for a, b in zip(planned, reference, strict=True):
        assert_same(a, b)
    # each batch: the first step calls the policy, the other 8 run its plan
    assert len(planned_steps) == 16
    assert ("agent", "loc") in planned[0].keys(True, True)


def test_the_reference_loop_never_plans(planned_steps):
    with spread() as env, torch.no_grad():
        run_steps(env, env.reset(), 4, group_actor(env), buffered=False)
    assert planned_steps == []


def test_nested_keys_are_planned_only_when_asked():
    with spread() as env:
        actor = group_actor(env, return_log_prob=True)
    assert tensor_plan(actor) is None
    plan = tensor_plan(actor, nested=True)
    assert [outs for _, _, outs in plan] == [
        (("agent", "loc"), ("agent", "scale")),
        (("agent", "action"), ("agent", "action_log_prob"))]


class ReadsAMemory(nn.Module):
    def forward(self, obs, memory):
        return obs[..., :5].clamp(0, 1), memory + 1


def test_a_policy_reading_an_entry_the_root_lacks_keeps_its_call(planned_steps):
    # the memory is written by the policy: absent at the first call, so no plan is made
    with spread() as env, torch.no_grad():
        root = env.reset()
        root.set(("agent", "memory"), torch.zeros(2, 1))
        policy = TensorDictModule(ReadsAMemory(), in_keys=[("agent", "observation"),
                                                           ("agent", "memory")],
                                  out_keys=[("agent", "action"), ("agent", "memory")])
        batch, _ = run_steps(env, root, 3, policy, buffered=True)
    assert planned_steps == [1, 1]  # memory is there at the first call: planned after it
    assert batch.get(("agent", "memory")).flatten().tolist() == [1, 1, 2, 2, 3, 3]


# ------------------------------------------------------------------------------ stacking
def nested_step(i):
    return TensorDict({"obs": torch.full((3,), float(i)),
                       "agents": TensorDict({"reward": torch.full((2, 1), float(i))}, [2]),
                       "next": {"done": torch.tensor([i % 2 == 0])}}, [])


def test_stack_steps_is_torch_stack_for_one_layout():
    steps = [nested_step(i) for i in range(4)]
    out, ref = stack_steps(steps, 0), torch.stack(steps, 0)
    assert out.batch_size == ref.batch_size == (4,)
    assert out["agents"].batch_size == ref["agents"].batch_size == (4, 2)
    assert_same(out, ref)


def test_stack_steps_after_batch_dims():
    steps = [TensorDict({"agents": TensorDict({"x": torch.full((5, 2), float(i))}, [5, 2])},
                        [5]) for i in range(3)]
    out = stack_steps(steps, 1)
    assert out.batch_size == (5, 3) and out["agents"].batch_size == (5, 3, 2)
    assert_same(out, torch.stack(steps, 1))


@pytest.mark.parametrize("case", ["other keys", "other shapes", "non-tensor"])
def test_stack_steps_leaves_other_layouts_to_torch_stack(case):
    steps = [nested_step(i) for i in range(3)]
    if case == "other keys":
        steps[1]["extra"] = torch.zeros(())
    elif case == "other shapes":
        steps[1]["obs"] = torch.zeros(4)
    else:
        for s in steps:
            s["note"] = NonTensorData("hi")
    assert stepping._stack_same_layout(steps, 0) is None
    try:
        ref = torch.stack(steps, 0)
    except Exception as err:  # torch.stack's own error, raised by stack_steps too
        with pytest.raises(type(err)):
            stack_steps(steps, 0)
        return
    out = stack_steps(steps, 0)
    assert set(out.keys(True, True)) == set(ref.keys(True, True))
    assert out.get("note").tolist() == ["hi"] * 3


class Loud(nn.Module):
    """Actions far outside simple_spread's [0, 1] box."""

    def forward(self, obs):
        return 10 * obs[..., :5]


def test_projected_group_actions_match_the_td_loop(planned_steps):
    outs = []
    for buffered in (True, False):
        with spread() as env, torch.no_grad():
            env.set_seed(1)
            policy = TensorDictModule(Loud(), in_keys=[("agent", "observation")],
                                      out_keys=[("agent", "action")])
            batch, _ = run_steps(env, env.reset(), 5, policy, project_actions=True,
                                 buffered=buffered)
            outs.append(batch)
    assert_same(*outs)
    action = outs[0].get(("agent", "action"))
    assert action.min() >= 0 and action.max() <= 1 and (action == 1).any()
    assert len(planned_steps) == 4
