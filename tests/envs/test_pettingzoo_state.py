"""PettingZooWrapper.capture_state / restore_state on MPE: a restored env continues its episodes
exactly (parallel and AEC APIs, through a checkpoint file); bad states change nothing; envs
whose state is not known raise naming them."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("pettingzoo")
mpe2 = pytest.importorskip("mpe2")

from mpe2 import simple_adversary_v3, simple_spread_v3, simple_tag_v3  # noqa: E402

from streamrl.envs import SerialEnv, TransformedEnv  # noqa: E402
from streamrl.envs.libs.pettingzoo import PettingZooEnv, PettingZooWrapper  # noqa: E402
from streamrl.envs.transforms import RewardSum  # noqa: E402
from streamrl.train import load_checkpoint, save_checkpoint  # noqa: E402
from tests.envs.env_state_helpers import advance, continue_from  # noqa: E402

CYCLES = 10  # short episodes: the runs below cross several episode ends


def _spread(parallel=True, n=3):
    make = simple_spread_v3.parallel_env if parallel else simple_spread_v3.env
    return PettingZooWrapper(make(N=n, continuous_actions=True, max_cycles=CYCLES),
                             use_mask=not parallel)


def _tag():
    return PettingZooWrapper(simple_tag_v3.parallel_env(continuous_actions=True,
                                                        max_cycles=CYCLES))


@pytest.mark.parametrize("make", [_spread, _tag, lambda: _spread(parallel=False)],
                         ids=["spread-parallel", "tag-parallel", "spread-aec"])
def test_a_restored_env_continues_identically(make, tmp_path):
    env, twin, other = make(), make(), make()
    try:
        td = advance(env, 14, seed=1)  # mid-episode
        advance(twin, 3, seed=99)
        advance(other, 3, seed=99)
        state = env.capture_state()
        # plain data: saved and loaded with weights_only=True
        state = load_checkpoint(save_checkpoint(tmp_path / "s.pt", {"env": state}))["env"]
        twin.restore_state(state)
        a, b, c = continue_from(env, td, 25), continue_from(twin, td, 25), continue_from(other, td, 25)
        assert bool(a["next", "done"].any()), "the run should cross an episode end"
        assert (a == b).all(), "the restored env diverged"
        assert not (a == c).all(), "an env not restored should differ (the test would be void)"
    finally:
        for e in (env, twin, other):
            e.close()


def test_state_right_after_construction_keeps_the_first_reset():
    env = _spread()
    env.set_seed(3)
    twin = _spread()
    try:
        state = env.capture_state()  # before any reset: the pending first reset
        twin.restore_state(state)
        assert (env.reset() == twin.reset()).all()
    finally:
        env.close()
        twin.close()


def test_batched_and_transformed_mpe_envs_continue_identically():
    def make():
        return TransformedEnv(SerialEnv(2, _spread), RewardSum(
            in_keys=[("agent", "reward")], out_keys=[("agent", "episode_reward")]))

    env, twin = make(), make()
    try:
        td = advance(env, 14, seed=1)
        advance(twin, 2, seed=5)
        twin.restore_state(env.capture_state())
        assert (continue_from(env, td, 25) == continue_from(twin, td, 25)).all()
    finally:
        env.close()
        twin.close()


def _unchanged(env):
    u = env._env.unwrapped
    return (u.steps, [a.state.p_pos.copy() for a in u.world.agents],
            u.np_random.bit_generator.state)


def _same(a, b):
    return a[0] == b[0] and all((x == y).all() for x, y in zip(a[1], b[1], strict=True)) \
        and a[2] == b[2]


def test_a_state_of_another_scenario_or_size_is_refused_and_changes_nothing():
    env, tag, bigger = _spread(), _tag(), _spread(n=4)
    try:
        advance(env, 4, seed=1)
        before = _unchanged(env)
        with pytest.raises(ValueError, match=r"simple_tag.*simple_spread"):
            env.restore_state(tag.capture_state())
        with pytest.raises(ValueError, match="entities"):
            env.restore_state(bigger.capture_state())
        state = env.capture_state()
        broken = {**state, "state": {**state["state"], "mpe": {
            **state["state"]["mpe"], "entities": [
                {**state["state"]["mpe"]["entities"][0], "p_pos": torch.zeros(5)},
                *state["state"]["mpe"]["entities"][1:]]}}}
        with pytest.raises(ValueError, match=r"entity 0 \(agent_0\) state.p_pos: expected "
                                             r"shape \(2,\), found"):
            env.restore_state(broken)
        with pytest.raises(ValueError, match="expected keys"):
            env.restore_state({**state, "state": {"mpe": state["state"]["mpe"]}})
        assert _same(_unchanged(env), before)
    finally:
        for e in (env, tag, bigger):
            e.close()


def test_a_scenario_whose_state_is_not_known_raises_naming_it():
    # simple_adversary's reset draws each agent's goal, which the entities' states do not hold
    env = PettingZooWrapper(simple_adversary_v3.parallel_env(continuous_actions=True))
    try:
        with pytest.raises(NotImplementedError, match="simple_adversary"):
            env.capture_state()
    finally:
        env.close()


def test_env_by_task_name_captures_too():
    env = PettingZooEnv("simple_spread_v3", parallel=True, max_cycles=CYCLES)
    twin = PettingZooEnv("simple_spread_v3", parallel=True, max_cycles=CYCLES)
    try:
        td = advance(env, 5, seed=2)
        twin.restore_state(env.capture_state())
        assert (continue_from(env, td, 25) == continue_from(twin, td, 25)).all()
        wrapper = _spread()
        with pytest.raises(ValueError, match="the state is of a PettingZooEnv, this env is a "
                                             "PettingZooWrapper"):
            wrapper.restore_state(env.capture_state())
        wrapper.close()
    finally:
        env.close()
        twin.close()
