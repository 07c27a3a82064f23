"""PettingZooEnv / PettingZooWrapper: TorchRL 0.14's layout for PettingZoo's parallel and AEC
APIs (MPE tasks from mpe2, tictactoe), agent groups, masks, agents that leave, errors,
SerialEnv, contract."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from streamrl.data import Bounded, Categorical, OneHot
from streamrl.envs import (
    Compose,
    MarlGroupMapType,
    RewardSum,
    SerialEnv,
    StepCounter,
    TransformedEnv,
    check_env_specs,
)
from streamrl.envs.libs.pettingzoo import PettingZooEnv, PettingZooWrapper
from streamrl.envs.transforms import ActionMask
from streamrl.testing import EnvContractTests

pettingzoo = pytest.importorskip("pettingzoo")
simple_adversary_v3 = pytest.importorskip("mpe2.simple_adversary_v3")
simple_spread_v3 = pytest.importorskip("mpe2.simple_spread_v3")
simple_tag_v3 = pytest.importorskip("mpe2.simple_tag_v3")

try:
    from pettingzoo.classic import tictactoe_v3
except ImportError:  # a classic game's dependencies missing
    tictactoe_v3 = None
needs_tictactoe = pytest.mark.skipif(tictactoe_v3 is None, reason="tictactoe does not import")


def spread(**kwargs):
    return PettingZooEnv("simple_spread_v3", parallel=True, max_cycles=5, **kwargs)


class _Walkers(pettingzoo.ParallelEnv):
    """Two walkers; ``walker_0`` terminates at step ``leave_at`` (and leaves the env), both
    are truncated at step ``length``. Infos hold a numeric ``score``."""

    metadata = {"name": "walkers_v0"}

    def __init__(self, leave_at=2, length=4, names=("walker_0", "walker_1"), sizes=(2, 2)):
        self.possible_agents = list(names)
        self._obs = {a: spaces.Box(-10, 10, (n,), np.float32) for a, n in zip(names, sizes)}
        self.leave_at, self.length = leave_at, length

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return spaces.Discrete(3)

    def reset(self, seed=None, options=None):
        self.agents, self.t = list(self.possible_agents), 0
        return ({a: np.zeros(self._obs[a].shape, np.float32) for a in self.agents},
                {a: {"score": 0.0, "name": a} for a in self.agents})

    def step(self, actions):
        assert set(actions) == set(self.agents), (actions, self.agents)
        self.t += 1
        obs = {a: np.full(self._obs[a].shape, self.t, np.float32) for a in self.agents}
        rew = {a: 1.0 + i for i, a in enumerate(self.agents)}
        term = {a: a == self.possible_agents[0] and self.t >= self.leave_at for a in self.agents}
        trunc = {a: self.t >= self.length for a in self.agents}
        infos = {a: {"score": float(self.t), "name": a} for a in self.agents}
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rew, term, trunc, infos


# --------------------------------------------------------------------- parallel API
def test_simple_spread_parallel_layout_and_specs():
    with spread() as env:
        assert env.group_map == {"agent": ["agent_0", "agent_1", "agent_2"]}
        assert env.parallel and env.done_on_any and not env.use_mask
        assert isinstance(env.action_spec, Categorical) and env.action_spec.shape == (3,)
        assert env.reward_keys == [("agent", "reward")]
        assert env.action_keys == [("agent", "action")]
        assert set(env.done_keys) == {"done", "terminated", "truncated", ("agent", "done"),
                                      ("agent", "terminated"), ("agent", "truncated")}
        assert env.full_observation_spec["agent"].shape == (3,)
        assert env.full_observation_spec["agent", "observation"].shape == (3, 18)
        td = env.reset()
        assert td.batch_size == () and td["agent"].batch_size == (3,)
        assert td["agent", "observation"].shape == (3, 18)
        assert td["agent", "done"].shape == (3, 1) and not td["agent", "done"].any()
        assert td["done"].shape == (1,)
        check_env_specs(env, seed=0, break_when_any_done="both")


def test_rollout_breaks_at_the_episode_end_and_resets_after():
    with spread() as env:
        env.set_seed(0)
        td = env.rollout(50, break_when_any_done=True)
        # max_cycles=5: every agent truncated at step 5; done_on_any ends the episode
        assert td.batch_size == (5,) and td["agent"].batch_size == (5, 3)
        assert td["next", "done"].squeeze(-1).tolist() == [False] * 4 + [True]
        assert td["next", "truncated"][-1].item() and not td["next", "terminated"][-1].item()
        assert td["next", "agent", "truncated"][-1].all()
        assert td["next", "agent", "reward"].shape == (5, 3, 1)
        assert td["next", "agent", "reward"].dtype == torch.float32
        # root at t+1 is next at t
        assert torch.equal(td["agent", "observation"][1:], td["next", "agent", "observation"][:-1])
        # reset after done: a fresh episode
        reset = env.reset()
        assert not reset["done"].item() and not reset["agent", "done"].any()
        again = env.rollout(50, break_when_any_done=True)
        assert again.batch_size == (5,)
        # without breaking, the done steps are followed by resets
        long = env.rollout(12, break_when_any_done=False)
        assert long["next", "done"].squeeze(-1).nonzero().flatten().tolist() == [4, 9]


def test_continuous_and_one_hot_actions():
    with spread(continuous_actions=True) as env:
        spec = env.action_spec
        assert isinstance(spec, Bounded) and spec.shape == (3, 5) and spec.dtype == torch.float32
        td = env.rollout(3)
        assert td["agent", "action"].shape == (3, 3, 5)
        check_env_specs(env, seed=0)
    with spread(categorical_actions=False) as env:
        assert isinstance(env.action_spec, OneHot) and env.action_spec.shape == (3, 5)
        td = env.rollout(3)
        assert (td["agent", "action"].sum(-1) == 1).all()
        check_env_specs(env, seed=0)


def test_seed_argument_and_set_seed_repeat_episodes():
    def run(env):
        torch.manual_seed(0)
        return env.rollout(5)

    with spread(seed=3) as a, spread(seed=3) as b:
        assert (run(a) == run(b)).all()
    with spread() as a, spread() as b:
        a.set_seed(7)
        b.set_seed(7)
        assert (run(a) == run(b)).all()
        a.set_seed(8)
        b.set_seed(7)
        ra, rb = run(a), run(b)
        assert not torch.equal(ra["agent", "observation"], rb["agent", "observation"])


def test_two_heterogeneous_groups_and_state():
    with PettingZooEnv("simple_adversary_v3", parallel=True, max_cycles=5,
                       return_state=True) as env:
        assert env.group_map == {"adversary": ["adversary_0"], "agent": ["agent_0", "agent_1"]}
        obs = env.full_observation_spec
        assert obs["adversary", "observation"].shape == (1, 8)
        assert obs["agent", "observation"].shape == (2, 10)
        assert env.reward_keys == [("adversary", "reward"), ("agent", "reward")]
        td = env.rollout(10)
        assert td.batch_size == (5,)
        assert td["next", "adversary", "reward"].shape == (5, 1, 1)
        assert td["next", "agent", "reward"].shape == (5, 2, 1)
        assert td["state"].shape == (5, *env.observation_spec["state"].shape)
        check_env_specs(env, seed=0)
    wrapped = simple_tag_v3.parallel_env(max_cycles=5, num_good=2, num_adversaries=3)
    with PettingZooWrapper(wrapped) as env:
        assert env.group_map == {"adversary": ["adversary_0", "adversary_1", "adversary_2"],
                                 "agent": ["agent_0", "agent_1"]}
        assert env.full_action_spec["adversary", "action"].shape == (3,)
        check_env_specs(env, seed=0)


def test_group_maps_given():
    env = PettingZooWrapper(simple_adversary_v3.parallel_env(max_cycles=5),
                            group_map=MarlGroupMapType.ONE_GROUP_PER_AGENT)
    with env:
        assert env.group_map == {a: [a] for a in ("adversary_0", "agent_0", "agent_1")}
        assert env.rollout(2)["next", "agent_1", "reward"].shape == (2, 1, 1)
    custom = {"red": ["agent_1"], "blue": ["adversary_0"], "green": ["agent_0"]}
    with spread(group_map={"team": ["agent_2", "agent_0", "agent_1"]}) as env:
        assert env.group_map == {"team": ["agent_2", "agent_0", "agent_1"]}
    with PettingZooEnv("mpe/simple_adversary_v3", parallel=True, group_map=custom) as env:
        assert list(env.group_map) == ["red", "blue", "green"]


def test_default_grouping_follows_torchrl_name_convention():
    names = ("scout_0", "scout_1", "leader", "big_boss")
    with PettingZooWrapper(_Walkers(names=names, sizes=(2, 2, 3, 4))) as env:
        assert env.group_map == {"scout": ["scout_0", "scout_1"], "leader": ["leader"],
                                 "big_boss": ["big_boss"]}


def test_infos_are_per_agent_entries():
    with PettingZooWrapper(_Walkers(leave_at=9, length=3)) as env:
        assert env.full_observation_spec["walker", "info", "score"].shape == (2,)
        assert ("walker", "info", "name") not in env.full_observation_spec.keys(True)
        td = env.rollout(3)
        assert td["next", "walker", "info", "score"][:, 0].tolist() == [1.0, 2.0, 3.0]


# ----------------------------------------------------------- agents that finish early
def test_agents_leaving_need_use_mask():
    env = PettingZooWrapper(_Walkers(leave_at=2, length=4), done_on_any=False)
    td = env.rand_step(env.rand_step(env.reset())["next"].clone())  # walker_0 finishes
    assert td["next", "walker", "done"].squeeze(-1).tolist() == [True, False]
    with pytest.raises(ValueError, match=r"agent 'walker_0' of group 'walker'.*use_mask=True"):
        env.rand_step(td["next"].clone())
    env.close()


def test_agents_leaving_with_use_mask():
    with PettingZooWrapper(_Walkers(leave_at=2, length=4), use_mask=True,
                           done_on_any=False) as env:
        assert env.full_observation_spec["walker", "mask"].shape == (2,)
        td = env.rollout(10, break_when_any_done=True)
        assert td.batch_size == (4,)  # the episode ends when every agent is done
        nxt = td["next", "walker"]
        assert nxt["done"].squeeze(-1).tolist() == [[False, False], [True, False],
                                                    [True, False], [True, True]]
        assert nxt["mask"].tolist() == [[True, True], [False, True], [False, True],
                                        [False, False]]
        assert td["walker", "mask"][0].all()  # at the reset
        # the step walker_0 finishes keeps its data; later steps zero it (TorchRL's layout)
        assert nxt["observation"][1, 0].tolist() == [2.0, 2.0]
        assert nxt["reward"][1, 0].item() == 1.0
        assert (nxt["observation"][2:, 0] == 0).all() and (nxt["reward"][2:, 0] == 0).all()
        assert nxt["terminated"][1, 0].item() and not nxt["truncated"][1, 0].item()
        assert nxt["info", "score"][2:, 0].tolist() == [0.0, 0.0]
        assert td["next", "done"].squeeze(-1).tolist() == [False, False, False, True]
        # every agent done, not every one terminated: the episode is truncated
        assert td["next", "truncated"][-1].item() and not td["next", "terminated"][-1].item()
        check_env_specs(env, seed=0, steps=6)


def test_done_on_any_ends_the_episode_at_the_first_agent_done():
    with PettingZooWrapper(_Walkers(leave_at=2, length=4)) as env:
        td = env.rollout(10, break_when_any_done=True)
        assert td.batch_size == (2,)
        assert td["next", "terminated"][-1].item() and not td["next", "truncated"][-1].item()


# -------------------------------------------------------------------------- AEC API
def test_aec_mpe_masks_the_acting_agent():
    with pytest.raises(ValueError, match="use_mask=True"):
        PettingZooEnv("simple_spread_v3", parallel=False, max_cycles=2)
    with PettingZooEnv("simple_spread_v3", parallel=False, use_mask=True,
                       max_cycles=2) as env:
        assert env.group_map == {a: [a] for a in ("agent_0", "agent_1", "agent_2")}
        assert not env.done_on_any
        td = env.rollout(20, break_when_any_done=True)
        # 2 cycles of 3 agents, acting in turn
        assert td.batch_size == (6,)
        masks = torch.cat([td[a, "mask"] for a in env.group_map], -1)
        assert masks.int().argmax(-1).tolist() == [0, 1, 2, 0, 1, 2]
        assert (masks.sum(-1) == 1).all()
        assert td["next", "done"].squeeze(-1).tolist() == [False] * 5 + [True]
        assert all(td["next", a, "truncated"][-1].all() for a in env.group_map)
        check_env_specs(env, seed=0, break_when_any_done="both")


@needs_tictactoe
def test_aec_classic_game_action_masks():
    with PettingZooWrapper(tictactoe_v3.env(), use_mask=True) as env:
        assert env.group_map == {"player_1": ["player_1"], "player_2": ["player_2"]}
        obs = env.full_observation_spec
        assert obs["player_1", "action_mask"].shape == (1, 9)
        assert obs["player_1", "action_mask"].dtype == torch.bool
        # the Dict observation's action mask is moved out of it, the rest stays nested
        assert obs["player_1", "observation"].keys() == ["observation"]
        assert obs["player_1", "observation", "observation"].shape == (1, 3, 3, 2)
        env.set_seed(0)
        torch.manual_seed(0)
        td = env.rollout(60, break_when_any_done=False)
        for t in range(td.shape[0]):
            player = "player_1" if td["player_1", "mask"][t].item() else "player_2"
            action = td[player, "action"][t].item()
            assert td[player, "action_mask"][t, 0, action].item(), (t, player)
        ends = td["next", "done"].squeeze(-1)
        assert 5 <= int(ends.sum()) and int(ends.sum()) <= 12
        # a game ends for both players at once: every agent terminated, the episode too
        assert td["next", "terminated"][ends].all()
        rewards = td["next", "player_1", "reward"][ends] + td["next", "player_2", "reward"][ends]
        assert (rewards.abs() <= 1).all()
        # after a reset, every action is allowed again; the spec follows the masks
        env.reset()
        assert env.full_action_spec["player_1", "action"].mask is None
        td = env.rand_step(env.reset())
        allowed = td["next", "player_2", "action_mask"][0]
        spec_mask = env.full_action_spec["player_2", "action"].mask
        assert spec_mask is not None and torch.equal(spec_mask.reshape(9), allowed)
        check_env_specs(env, seed=0, break_when_any_done="both", steps=12)


@needs_tictactoe
def test_a_batched_env_of_masked_games_follows_the_masks_with_action_mask():
    # the batched env stacks its sub-envs' specs once; ActionMask on top keeps its random
    # actions legal (TorchRL's recipe), including for the player who waits (no legal move)
    groups = ("player_1", "player_2")
    env = TransformedEnv(
        SerialEnv(2, lambda: PettingZooEnv("tictactoe_v3", parallel=False, use_mask=True)),
        Compose(*[ActionMask(action_key=(g, "action"), mask_key=(g, "action_mask"))
                  for g in groups]))
    try:
        env.set_seed(0)
        td = env.rollout(40, break_when_any_done=False)
        assert td.batch_size == (2, 40)
        for g in groups:
            acting = td[g, "mask"].reshape(2, 40)
            action = td[g, "action"].reshape(2, 40)
            legal = td[g, "action_mask"].reshape(2, 40, 9).gather(-1, action.unsqueeze(-1))
            assert bool(legal.squeeze(-1)[acting].all()), g
            assert int(acting.sum()) > 10
        assert int(td["next", "done"].sum()) >= 4  # whole games were played
    finally:
        env.close()


# -------------------------------------------------------------------------- bad input
def test_unknown_agent_in_group_map():
    with pytest.raises(ValueError, match=r"group 'agent' names the unknown agent 'agent_7'"):
        spread(group_map={"agent": ["agent_0", "agent_1", "agent_2", "agent_7"]})


def test_heterogeneous_agents_in_one_group():
    env = simple_adversary_v3.parallel_env(max_cycles=5)
    with pytest.raises(ValueError, match=r"group 'agents'.*observation.*\('agents', "
                                         r"'observation'\).*expected.*found"):
        PettingZooWrapper(env, group_map=MarlGroupMapType.ALL_IN_ONE_GROUP)


def test_bad_arguments():
    with pytest.raises(TypeError, match="ParallelEnv or AECEnv"):
        PettingZooWrapper(object())
    with pytest.raises(TypeError, match="env="):
        PettingZooWrapper()
    with pytest.raises(ValueError, match="batch_size must be empty"):
        spread(batch_size=[2])
    with pytest.raises(ValueError, match="unknown task 'simple_nothing_v1'"):
        PettingZooEnv("simple_nothing_v1", parallel=True)
    with pytest.raises(ValueError, match="no global state"):
        PettingZooWrapper(_Walkers(), return_state=True)
    with spread() as env, pytest.raises(ValueError, match="expected shape"):
        td = env.rand_action(env.reset())
        td["agent", "action"] = torch.zeros(3, 2, dtype=torch.int64)
        env.step(td)


def test_task_names_and_available_envs():
    names = PettingZooEnv.available_envs
    assert "mpe/simple_spread_v3" in names and "mpe/simple_tag_v3" in names
    with PettingZooEnv("mpe/simple_spread_v3", parallel=True, N=2, max_cycles=3) as env:
        assert env.group_map == {"agent": ["agent_0", "agent_1"]}
        assert env.task_name == "mpe/simple_spread_v3"
        assert env.possible_agents == ["agent_0", "agent_1"]  # read from the PettingZoo env


# -------------------------------------------------------------------------- batching
def test_reset_keys_name_every_place_with_done_flags_and_reward_sum_uses_them():
    # TorchRL's EnvBase.reset_keys: the root's first, then each group's
    env = TransformedEnv(SerialEnv(2, lambda: PettingZooEnv("simple_tag_v3", parallel=True,
                                                            max_cycles=5)), StepCounter())
    try:
        assert env.reset_keys == ["_reset", ("adversary", "_reset"), ("agent", "_reset")]
        # the competitive tutorial's RewardSum: one root reset key per group's reward
        env.append_transform(RewardSum(in_keys=env.reward_keys,
                                       reset_keys=["_reset"] * len(env.reward_keys)))
        td = env.rollout(12, break_when_any_done=False)
        assert td["next", "step_count"][0].flatten().tolist() == [1, 2, 3, 4, 5] * 2 + [1, 2]
        summed = td["next", "agent", "episode_reward"][0, :, 0, 0]
        reward = td["next", "agent", "reward"][0, :, 0, 0]
        torch.testing.assert_close(summed[5:10], reward[5:10].cumsum(0))
        check_env_specs(env, seed=0)
    finally:
        env.close()


def test_serial_env_of_two():
    with SerialEnv(2, lambda: PettingZooEnv("simple_adversary_v3", parallel=True,
                                            max_cycles=4)) as env:
        assert env.batch_size == (2,)
        assert env.full_action_spec["agent", "action"].shape == (2, 2)
        td = env.rollout(10, break_when_any_done=False)
        assert td.batch_size == (2, 10) and td["agent"].batch_size == (2, 10, 2)
        assert td["next", "agent", "reward"].shape == (2, 10, 2, 1)
        assert td["next", "adversary", "observation"].shape == (2, 10, 1, 8)
        assert td["next", "done"].squeeze(-1)[:, 3].all()
        short = env.rollout(10, break_when_any_done=True)
        assert short.batch_size == (2, 4)
        check_env_specs(env, seed=0, break_when_any_done="both")


# -------------------------------------------------------------------------- contract
class TestSimpleSpreadContract(EnvContractTests):
    def make_env(self):
        return PettingZooEnv("simple_spread_v3", parallel=True, max_cycles=8)


class TestWrapperTwoGroupsContract(EnvContractTests):
    def make_env(self):
        return PettingZooWrapper(simple_tag_v3.parallel_env(max_cycles=8), return_state=True)


class TestAECContract(EnvContractTests):
    def make_env(self):
        return PettingZooWrapper(simple_spread_v3.env(max_cycles=3, continuous_actions=True),
                                 use_mask=True)


@needs_tictactoe
class TestTicTacToeContract(EnvContractTests):
    def make_env(self):
        return PettingZooEnv("tictactoe_v3", parallel=False, use_mask=True)


class TestSerialContract(EnvContractTests):
    def make_env(self):
        return SerialEnv(2, lambda: PettingZooEnv("simple_adversary_v3", parallel=True,
                                                  max_cycles=8))


# ----------------------------------------------------------- a policy that does not fit a group
@pytest.mark.parametrize("continuous", [True, False])
@pytest.mark.parametrize("fault", ["key", "shape"])
def test_a_collector_names_the_group_key_a_policy_gets_wrong_before_the_env_steps(continuous,
                                                                                  fault):
    from tensordict.nn import TensorDictModule

    from streamrl.collectors import Collector

    env = PettingZooWrapper(simple_spread_v3.parallel_env(N=3, continuous_actions=continuous))
    out = ("agent", "act") if fault == "key" else ("agent", "action")
    policy = TensorDictModule(torch.nn.Linear(18, 4), in_keys=[("agent", "observation")],
                              out_keys=[out])
    steps = env._env.unwrapped.steps if hasattr(env._env.unwrapped, "steps") else None
    collector = Collector(env, policy, frames_per_batch=10, total_frames=10)
    try:
        if fault == "key":
            expected = r"missing action key \('agent', 'action'\); found keys .*\('agent', 'act'\)"
        elif continuous:  # 5 forces per agent
            expected = r"'agent': 'action': project: expected a value of shape \(3, 5\).*\(3, 4\)"
        else:  # one index per agent
            expected = (r"\('agent', 'action'\): action: expected shape torch.Size\(\[3\]\), "
                        r"found torch.Size\(\[3, 4\]\)")
        with pytest.raises(Exception, match=expected):
            next(iter(collector))
    finally:
        collector.shutdown()
    if steps is not None:  # the env took no step
        assert env._env.unwrapped.steps == steps
    env.close()
