"""VmasEnv / VmasWrapper: VMAS scenarios as natively batched multi-agent envs (TorchRL's
layout), and the pieces downstream of an env (specs check, rollouts, step_mdp, transforms,
batched envs, collectors) on them."""

from __future__ import annotations

import pytest
import torch

from streamrl.collectors import Collector
from streamrl.data.specs import Categorical, MultiCategorical, OneHot
from streamrl.envs import (
    MarlGroupMapType,
    RewardSum,
    SerialEnv,
    StepCounter,
    TransformedEnv,
    VmasEnv,
    VmasWrapper,
    check_env_specs,
    step_mdp,
)
from streamrl.envs.libs.vmas import _default_group_map
from streamrl.testing import EnvContractTests

vmas = pytest.importorskip("vmas")

AGENTS = ("agents", "observation")


def navigation(**kwargs):
    args = {"num_envs": 4, "continuous_actions": True, "max_steps": 6, "n_agents": 3}
    return VmasEnv("navigation", **{**args, **kwargs})


def adversary(**kwargs):
    """simple_adversary: groups "adversary" (1 agent, 8 observations) and "agent" (2 agents,
    10 observations), discrete one-hot actions."""
    env = vmas.make_env("simple_adversary", num_envs=3, continuous_actions=False, max_steps=5,
                        seed=0)
    return VmasWrapper(env, categorical_actions=False, **kwargs)


class TestNavigationContract(EnvContractTests):
    stepping_steps = 14  # episodes of 6 steps

    def make_env(self):
        return navigation()


class TestAdversaryWrapperContract(EnvContractTests):
    stepping_steps = 12

    def make_env(self):
        return adversary()


# ------------------------------------------------------------------ the layout
def test_layout_is_torchrls():
    with navigation() as env:
        assert env.batch_size == (4,)
        assert env.group_map == {"agents": ["agent_0", "agent_1", "agent_2"]}
        assert env.agent_names == ["agent_0", "agent_1", "agent_2"]
        assert env.action_key == ("agents", "action")
        assert env.reward_keys == [("agents", "reward")]
        assert sorted(env.done_keys) == ["done", "terminated", "truncated"]
        assert env.reset_keys == ["_reset"]  # done flags at the root only
        assert env.action_spec.shape == (4, 3, 2)  # one group: the leaf, as in TorchRL
        assert env.full_observation_spec["agents"].shape == (4, 3)
        assert env.full_action_spec_unbatched[env.action_key].space.low.shape == (3, 2)
        assert env.n_agents == 3 and env.num_envs == 4  # read from the VMAS env
        td = env.rand_step(env.reset())
        assert td[AGENTS].shape == (4, 3, 18)
        assert td["agents", "action"].shape == (4, 3, 2)
        assert td["next", "agents", "reward"].shape == (4, 3, 1)
        assert td["next", "done"].shape == (4, 1)
        info = td["next", "agents", "info"]
        assert sorted(info.keys()) == ["agent_collisions", "final_rew", "pos_rew"]
        assert info["pos_rew"].shape == (4, 3, 1) and info["pos_rew"].dtype == torch.float32
        assert repr(env) == ("VmasEnv(num_envs=4, n_agents=3, batch_size=torch.Size([4]), "
                             "device=cpu) (scenario=navigation)")
        assert "navigation" in VmasEnv.available_envs


def test_default_group_map_follows_torchrl():
    assert _default_group_map(["agent_0", "agent_1"]) == {"agents": ["agent_0", "agent_1"]}
    assert _default_group_map(["adversary_0", "agent_0", "agent_1"]) == {
        "adversary": ["adversary_0"], "agent": ["agent_0", "agent_1"]}
    # a name without "_<int>": everyone in "agents"
    assert _default_group_map(["alice", "bob_0"]) == {"agents": ["alice", "bob_0"]}


def test_heterogeneous_groups_from_the_scenario():
    with adversary() as env:
        assert env.group_map == {"adversary": ["adversary_0"], "agent": ["agent_0", "agent_1"]}
        assert env.action_keys == [("adversary", "action"), ("agent", "action")]
        assert env.full_observation_spec["adversary", "observation"].shape == (3, 1, 8)
        assert env.full_observation_spec["agent", "observation"].shape == (3, 2, 10)
        assert isinstance(env.full_action_spec["agent", "action"], OneHot)
        check_env_specs(env)


def test_dict_group_map_routes_each_agents_action():
    env = navigation(num_envs=2, group_map={"a": ["agent_2"], "b": ["agent_0", "agent_1"]})
    with env:
        td = env.reset()
        td["a", "action"] = torch.full((2, 1, 2), 0.5)
        td["b", "action"] = torch.tensor([[[0.1, 0.2], [0.3, 0.4]]] * 2)
        td = env.step(td)
        u = [agent.action.u for agent in env.agents]
        assert torch.allclose(u[2], torch.tensor([0.5, 0.5]))
        assert torch.allclose(u[0], torch.tensor([0.1, 0.2]))
        assert torch.allclose(u[1], torch.tensor([0.3, 0.4]))
        assert td["next", "a", "reward"].shape == (2, 1, 1)
        assert td["next", "b", "observation"].shape == (2, 2, 18)
        # every group's action is checked, not only the first one's
        bad = env.reset()
        bad["a", "action"] = torch.zeros(2, 1, 2)
        bad["b", "action"] = torch.zeros(2, 2, 2, dtype=torch.float64)
        with pytest.raises(TypeError, match=r"\('b', 'action'\).*float64"):
            env.step(bad)


@pytest.mark.parametrize("group_map, match", [
    ({"agents": ["agent_0", "bob"]}, "group 'agents' names the unknown agent 'bob'"),
    ({"a": ["agent_0"], "b": ["agent_0", "agent_1"]}, "'agent_0' is in two groups"),
])
def test_bad_group_maps_are_refused_when_the_env_is_built(group_map, match):
    with pytest.raises(ValueError, match=match):
        navigation(num_envs=2, n_agents=2, group_map=group_map)


def test_a_group_of_agents_with_different_spaces_is_refused():
    with pytest.raises(ValueError) as err:
        adversary(group_map=MarlGroupMapType.ALL_IN_ONE_GROUP)
    msg = str(err.value)
    for part in ("group 'agents'", "observation", "'adversary_0'", "'agent_0'",
                 "(8,)", "(10,)"):
        assert part in msg


@pytest.mark.parametrize("categorical, multidiscrete, spec_cls, shape", [
    (True, False, Categorical, (2, 2)),
    (False, False, OneHot, (2, 2, 9)),
    (True, True, MultiCategorical, (2, 2, 2)),
])
def test_discrete_actions(categorical, multidiscrete, spec_cls, shape):
    env = navigation(num_envs=2, n_agents=2, continuous_actions=False,
                     categorical_actions=categorical, multidiscrete_actions=multidiscrete)
    with env:
        assert isinstance(env.action_spec, spec_cls) and env.action_spec.shape == shape
        check_env_specs(env)
        # the same choices reach VMAS whatever their encoding
        idx = torch.tensor([[1, 2], [3, 4]])
        if spec_cls is OneHot:
            action = torch.nn.functional.one_hot(idx, 9)
        elif spec_cls is MultiCategorical:
            action = torch.stack([idx // 3, idx % 3], -1)
        else:
            action = idx
        env.step(env.reset().set(("agents", "action"), action))
        u = torch.stack([agent.action.u for agent in env.agents], 1)
        assert torch.equal(u, torch.tensor([[[0.0, -1.0], [0.0, 1.0]],
                                            [[-1.0, 0.0], [-1.0, -1.0]]]))


# ------------------------------------------------------------ resets, flags, seeds
def test_reset_of_some_envs_only():
    with navigation(max_steps=None) as env:
        td = env.reset()
        for _ in range(3):
            td = env.next_root(env.rand_step(td))
        before = td[AGENTS].clone()
        td.set("_reset", torch.tensor([[True], [False], [True], [False]]))
        out = env.reset(td)
        assert env._env.steps.tolist() == [0, 3, 0, 3]  # VMAS's step counters
        assert torch.equal(out[AGENTS][[1, 3]], before[[1, 3]])
        assert not torch.equal(out[AGENTS][[0, 2]], before[[0, 2]])
        assert not out["done"].any()


def test_max_steps_sets_terminated_unless_vmas_splits_the_flags():
    with navigation(num_envs=2, max_steps=3) as env:
        nxt = env.rollout(3)["next"]
        assert nxt["terminated"][:, -1].all() and not nxt["truncated"].any()
    with navigation(num_envs=2, max_steps=3, terminated_truncated=True) as env:
        nxt = env.rollout(3)["next"]
        assert nxt["truncated"][:, -1].all() and not nxt["terminated"].any()
        assert torch.equal(nxt["done"], nxt["truncated"])


def test_seed_gives_the_same_episodes():
    # (VMAS's random state is one for all its envs, apart from torch's global one)
    with navigation(seed=3) as env:
        first = env.reset()[AGENTS]
    with navigation(seed=3) as env:
        assert torch.equal(env.reset()[AGENTS], first)
        env.set_seed(5)
        torch.manual_seed(0)
        first = env.reset()[AGENTS]
        env.set_seed(5)
        torch.manual_seed(1)  # does not change VMAS's draws
        assert torch.equal(env.reset()[AGENTS], first)


def test_out_of_bounds_continuous_actions():
    with navigation(num_envs=2) as env:
        td = env.reset().set(("agents", "action"), torch.full((2, 3, 2), 2.0))
        with pytest.raises(ValueError, match="out of the action spec"):
            env.step(td)
    with navigation(num_envs=2, clamp_actions=True) as env:  # VMAS clamps them
        env.step(env.reset().set(("agents", "action"), torch.full((2, 3, 2), 2.0)))


def test_constructor_arguments():
    with pytest.raises(TypeError, match="expects a VMAS env"):
        VmasWrapper(object())
    with pytest.raises(ValueError, match="differs from the VMAS env's device"):
        VmasWrapper(vmas.make_env("navigation", num_envs=2), device="meta")
    with pytest.raises(ValueError, match=r"batch_size must be \[num_envs\]"):
        VmasWrapper(vmas.make_env("navigation", num_envs=2), batch_size=[3])
    with pytest.raises(NotImplementedError):
        VmasWrapper(vmas.make_env("navigation", num_envs=2), from_pixels=True)
    with pytest.raises(ValueError, match="VMAS has no scenario 'navigatoin'"):
        VmasEnv("navigatoin", num_envs=2)
    with pytest.raises(ValueError, match="num_envs"):
        VmasEnv("navigation", num_envs=0)
    # VMAS's dict spaces give the same layout
    with navigation(num_envs=2, dict_spaces=True) as env:
        check_env_specs(env)
        assert env.full_observation_spec[AGENTS].shape == (2, 3, 18)


# ---------------------------------------------------------------- downstream
def test_step_mdp_with_groups():
    with navigation(num_envs=2) as env:
        td = env.rand_step(env.reset())
        td["agents", "loc"] = td["agents", "action"].clone()  # a policy's other output
        root = step_mdp(td, reward_keys=env.reward_keys, action_keys=env.action_keys)
        assert set(root["agents"].keys()) == {"observation", "info", "loc"}
        assert root[AGENTS] is td["next", "agents", "observation"]
        assert root["agents"] is not td["next", "agents"]  # a reset writes into the root only
        # TorchRL's defaults exclude the root "action"/"reward" only: a group keeps both
        assert {"action", "reward", "loc"} <= set(step_mdp(td)["agents"].keys())
        assert set(env.next_root(td)["agents"].keys()) == {"observation", "info", "loc"}


def _episode_sums(rewards, dones, start):
    """Per env: the running sum of ``rewards`` [B, T, ...] restarting after each done."""
    out, acc = torch.zeros_like(rewards), start.clone()
    for t in range(rewards.shape[1]):
        acc = acc + rewards[:, t]
        out[:, t] = acc
        acc = torch.where(dones[:, t].reshape(-1, *[1] * (acc.ndim - 1)), 0.0, acc)
    return out


def test_reward_sum_restarts_per_env():
    base = navigation(max_steps=4)
    env = TransformedEnv(base, RewardSum(in_keys=[base.reward_key],
                                         out_keys=[("agents", "episode_reward")]))
    with env:
        check_env_specs(env)
        assert env.full_observation_spec["agents", "episode_reward"].shape == (4, 3, 1)
        td = env.reset()
        for _ in range(2):
            td = env.next_root(env.rand_step(td))
        sums = td["agents", "episode_reward"].clone()
        assert sums.abs().sum() > 0
        td.set("_reset", torch.tensor([[True], [False], [True], [False]]))
        td = env.reset(td).exclude("_reset")
        assert not td["agents", "episode_reward"][[0, 2]].any()
        assert torch.equal(td["agents", "episode_reward"][[1, 3]], sums[[1, 3]])
        start = td["agents", "episode_reward"].clone()
        out = env.rollout(6, break_when_any_done=False, auto_reset=False, tensordict=td)
        done = out["next", "done"].squeeze(-1)
        # envs 1 and 3 end after 2 more steps, envs 0 and 2 after 4: the sums restart apart
        assert done[:, 1].tolist() == [False, True, False, True]
        assert done[:, 3].tolist() == [True, False, True, False]
        want = _episode_sums(out["next", "agents", "reward"], done, start)
        assert torch.allclose(out["next", "agents", "episode_reward"], want, atol=1e-6)


def test_step_counter_truncates_at_the_root():
    env = TransformedEnv(navigation(num_envs=2, max_steps=None), StepCounter(max_steps=3))
    with env:
        check_env_specs(env)
        td = env.rollout(7, break_when_any_done=False)
        assert td["next", "step_count"][0].flatten().tolist() == [1, 2, 3, 1, 2, 3, 1]
        assert td["next", "truncated"][0].flatten().tolist() == [
            False, False, True, False, False, True, False]
        assert td["next", "agents", "reward"].shape == (2, 7, 3, 1)


def test_serial_env_of_two_vmas_envs():
    with SerialEnv(2, lambda: navigation(max_steps=3)) as env:
        assert env.batch_size == (2, 4)
        assert env.full_observation_spec[AGENTS].shape == (2, 4, 3, 18)
        check_env_specs(env)
        td = env.rollout(5, break_when_any_done=False)
        assert td[AGENTS].shape == (2, 4, 5, 3, 18)
        assert td["next", "done"][..., 2, 0].all()
        # the envs done at step 3 were reset: the next root is their reset observation
        assert not torch.equal(td[AGENTS][:, :, 3], td["next", "agents", "observation"][:, :, 2])
        # a "_reset" mask restarts those VMAS envs of a sub-env only
        mask = torch.zeros(2, 4, 1, dtype=torch.bool)
        mask[1, 2] = True
        root = env.next_root(env.rand_step(env.reset()))
        held = root[AGENTS].clone()
        root = env.reset(root.set("_reset", mask)).exclude("_reset")
        assert env._envs[1]._env.steps.tolist() == [1, 1, 0, 1]
        assert env._envs[0]._env.steps.tolist() == [1, 1, 1, 1]
        kept = torch.ones(2, 4, dtype=torch.bool)
        kept[1, 2] = False
        assert torch.equal(root[AGENTS][kept], held[kept])
        out = env.rollout(3, break_when_any_done=False, auto_reset=False, tensordict=root)
        done = out["next", "done"].squeeze(-1)
        want = torch.zeros(2, 4, 3, dtype=torch.bool)
        want[..., 1] = True  # the others end 2 steps on, and restart
        want[1, 2] = torch.tensor([False, False, True])
        assert torch.equal(done, want)


def test_collector_with_a_policy_writing_the_group_action():
    base = navigation(max_steps=5)
    env = TransformedEnv(base, RewardSum(in_keys=[base.reward_key],
                                         out_keys=[("agents", "episode_reward")]))
    spec = env.full_action_spec[env.action_key]

    def policy(td):
        return td.set(("agents", "action"), spec.rand())

    collector = Collector(env, policy, device="cpu", frames_per_batch=24, total_frames=48)
    batches = list(collector)
    collector.shutdown()
    assert len(batches) == 2
    for batch in batches:
        assert batch.batch_size == (4, 6)  # frames count env steps, not agents
        assert batch["agents", "action"].shape == (4, 6, 3, 2)
        assert batch["next", "agents", "episode_reward"].shape == (4, 6, 3, 1)
    # episodes of 5 steps: each env's trajectory id changes after its done step
    ids = torch.cat([b["collector", "traj_ids"] for b in batches], 1)
    done = torch.cat([b["next", "done"] for b in batches], 1).squeeze(-1)
    assert done[:, 4].all() and done[:, 9].all()
    assert (ids[:, 5] != ids[:, 4]).all() and (ids[:, :5] == ids[:, :1]).all()


def test_collector_random_frames_draw_every_group_action():
    env = navigation(num_envs=2)

    def zeros(td):
        return td.set(("agents", "action"), torch.zeros(2, 3, 2))

    collector = Collector(env, zeros, frames_per_batch=8, total_frames=16,
                          init_random_frames=8)
    first, second = list(collector)
    collector.shutdown()
    assert first["agents", "action"].abs().sum() > 0  # random, not the policy's zeros
    assert not second["agents", "action"].any()


def test_the_multi_agent_ppo_tutorials_env_and_collector():
    """The env, policy and collector of TorchRL's multi-agent PPO tutorial (a linear policy
    over the agent dim in place of its MultiAgentMLP)."""
    from tensordict.nn import TensorDictModule
    from tensordict.nn.distributions import NormalParamExtractor

    from streamrl.data import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
    from streamrl.modules import ProbabilisticActor, TanhNormal

    env = VmasEnv(scenario="navigation", num_envs=4, continuous_actions=True, max_steps=5,
                  device="cpu", n_agents=3)
    env = TransformedEnv(env, RewardSum(in_keys=[env.reward_key],
                                        out_keys=[("agents", "episode_reward")]))
    check_env_specs(env)
    assert env.rollout(5).batch_size == (4, 5)
    net = torch.nn.Sequential(
        torch.nn.Linear(env.observation_spec["agents", "observation"].shape[-1],
                        2 * env.action_spec.shape[-1]),
        NormalParamExtractor(),
    )
    policy = ProbabilisticActor(
        module=TensorDictModule(net, in_keys=[("agents", "observation")],
                                out_keys=[("agents", "loc"), ("agents", "scale")]),
        spec=env.action_spec_unbatched,
        in_keys=[("agents", "loc"), ("agents", "scale")],
        out_keys=[env.action_key],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": env.full_action_spec_unbatched[env.action_key].space.low,
                             "high": env.full_action_spec_unbatched[env.action_key].space.high},
        return_log_prob=True,
    )
    collector = Collector(env, policy, device="cpu", storing_device="cpu",
                          frames_per_batch=20, total_frames=40)
    buffer = ReplayBuffer(storage=LazyTensorStorage(20), sampler=SamplerWithoutReplacement(),
                          batch_size=10)
    for data in collector:
        shape = data.get_item_shape(("next", env.reward_key))
        data.set(("next", "agents", "done"), data.get(("next", "done")).unsqueeze(-1).expand(shape))
        buffer.extend(data.reshape(-1))
        sample = buffer.sample()
        assert sample["agents", "action"].shape == (10, 3, 2)
        assert sample["next", "agents", "done"].shape == (10, 3, 1)
        done = data.get(("next", "agents", "done"))
        assert done.any()  # episodes of 5 steps in batches of 5
        assert torch.isfinite(data["next", "agents", "episode_reward"][done]).all()
    collector.shutdown()
