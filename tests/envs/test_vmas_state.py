"""VmasWrapper.capture_state / restore_state: a restored env continues its episodes exactly
(through a checkpoint file, VMAS's shared random state included); bad states change nothing;
scenarios whose state is not known raise naming them."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("vmas")

from streamrl.envs.libs.vmas import VmasEnv
from streamrl.train import load_checkpoint, save_checkpoint
from tests.envs.env_state_helpers import advance, continue_from

MAX_STEPS = 12  # short episodes: the runs below cross episode ends (and their random resets)


def _env(scenario="navigation", num_envs=4, **kwargs):
    if scenario == "navigation":
        kwargs.setdefault("n_agents", 3)
    return VmasEnv(scenario=scenario, num_envs=num_envs, continuous_actions=True,
                   max_steps=MAX_STEPS, seed=0, **kwargs)


@pytest.mark.parametrize("scenario", ["navigation", "simple_tag"])
def test_a_restored_env_continues_identically(scenario, tmp_path):
    env, twin, other = _env(scenario), _env(scenario), _env(scenario)
    td = advance(env, 17, seed=1)  # mid-episode, after a reset
    advance(twin, 3, seed=99)
    advance(other, 3, seed=99)
    state = load_checkpoint(save_checkpoint(tmp_path / "s.pt", {"env": env.capture_state()}))
    a = continue_from(env, td)
    # (VMAS's random state is shared by its envs: restoring the twin rewinds it, so the
    # twin draws the resets the original drew)
    twin.restore_state(state["env"])
    b = continue_from(twin, td)
    c = continue_from(other, td)
    assert bool(a["next", "done"].any()), "the run should cross an episode end"
    assert (a == b).all(), "the restored env diverged"
    assert not (a == c).all(), "an env not restored should differ (the test would be void)"


def test_the_shared_random_state_is_part_of_the_state():
    env, twin = _env(), _env()
    td = advance(env, 5, seed=1)
    state = env.capture_state()
    a = continue_from(env, td)
    twin.restore_state(state)
    env.restore_state(state)
    b = continue_from(env, td)  # the same env again: the same resets
    assert (a == b).all()


def _positions(env):
    return [agent.state.pos.clone() for agent in env._env.world.agents]


def test_bad_states_are_refused_and_change_nothing():
    # (building a VMAS env seeds VMAS's shared random state: the others first)
    foreign = [_env(**kw).capture_state()
               for kw in ({"scenario": "simple_tag"}, {"num_envs": 2}, {"n_agents": 2})]
    env = _env()
    advance(env, 4, seed=1)
    before = _positions(env)
    rng_before = type(env._env).vmas_random_state[0].clone()
    state = env.capture_state()
    with pytest.raises(ValueError, match="'mpe/simple_tag', this env runs 'navigation'"):
        env.restore_state(foreign[0])
    with pytest.raises(ValueError, match="num_envs=2, this env num_envs=4"):
        env.restore_state(foreign[1])
    with pytest.raises(ValueError, match="the state holds the objects"):
        env.restore_state(foreign[2])
    objects = dict(state["state"]["objects"])
    path = next(p for p in objects if p.endswith(".state"))
    objects[path] = {**objects[path], "_pos": torch.zeros(4, 3)}
    with pytest.raises(ValueError, match=r"\.state\._pos: expected torch.float32 of shape "
                                         r"\(4, 2\), found torch.float32 of shape \(4, 3\)"):
        env.restore_state({**state, "state": {**state["state"], "objects": objects}})
    with pytest.raises(ValueError, match="'random' must hold"):
        env.restore_state({**state, "state": {**state["state"], "random": {}}})
    with pytest.raises(ValueError, match="expected a VMAS env state with keys"):
        env.restore_state({**state, "state": {"objects": objects}})
    assert all(torch.equal(x, y) for x, y in zip(_positions(env), before, strict=True))
    assert torch.equal(type(env._env).vmas_random_state[0], rng_before)


def test_a_scenario_whose_state_is_not_known_raises_naming_it():
    env = VmasEnv(scenario="balance", num_envs=2, continuous_actions=True, seed=0)
    with pytest.raises(NotImplementedError, match="'balance'"):
        env.capture_state()


def test_can_capture_state_names_the_supported_scenarios():
    from streamrl.envs.libs.vmas import can_capture_state

    assert can_capture_state("navigation") and can_capture_state("simple_tag")
    assert can_capture_state("mpe/simple_spread")
    assert not can_capture_state("balance") and not can_capture_state("tag")
