"""hiro_relabel: on hand-built segments the candidate that reproduces the stored low-level
actions is chosen (the travelled displacement, or the stored goal when it is right), padded
steps do not count, candidates stay in the goal range, bad input is named."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.objectives import hiro_relabel


def _low_actor(obs, goal):
    """Moves towards the goal, at most 0.1 per coordinate (the observation is unused)."""
    return goal.clamp(-0.1, 0.1)


def _segment(true_goal, stored_goal, k=3, pad=0):
    """One segment played by _low_actor towards ``true_goal`` from the origin, padded with
    ``pad`` junk steps."""
    s = torch.zeros(2)
    states, actions = [], []
    for _ in range(k):
        g = torch.tensor(true_goal) - s  # the relative goal at this step: s0 + g* - s
        a = _low_actor(s, g)
        states.append(s.clone())
        actions.append(a)
        s = s + a
    for _ in range(pad):
        states.append(torch.full((2,), 9.0))
        actions.append(torch.full((2,), -9.0))
    n = k + pad
    return TensorDict({
        "observation": torch.zeros(2), "action": torch.tensor(stored_goal),
        "next": {"observation": s},
        "hrl": {"steps": {"observation": torch.stack(states), "action": torch.stack(actions),
                          "mask": torch.arange(n) < k}},
    }, [])


def _relabel(segments, **kwargs):
    batch = torch.stack(segments)
    return hiro_relabel(batch, _low_actor, goal_low=-0.5, goal_high=0.5,
                        generator=torch.Generator().manual_seed(0), **kwargs)


def test_the_travelled_displacement_replaces_a_wrong_goal():
    out = _relabel([_segment([0.3, 0.0], [-0.4, 0.2]), _segment([0.0, -0.2], [0.3, 0.3])])
    torch.testing.assert_close(out["action"], torch.tensor([[0.3, 0.0], [0.0, -0.2]]))
    assert out["hrl", "relabel_index"].flatten().tolist() == [1, 1]


def test_a_goal_that_explains_the_actions_is_kept():
    out = _relabel([_segment([0.25, 0.1], [0.25, 0.1])])
    assert out["hrl", "relabel_index"].item() == 0  # ties go to the stored goal
    torch.testing.assert_close(out["action"], torch.tensor([[0.25, 0.1]]))


def test_padded_steps_do_not_count():
    padded = _relabel([_segment([0.2, 0.0], [-0.3, 0.0], k=2, pad=3)])
    assert padded["hrl", "relabel_index"].item() == 1
    torch.testing.assert_close(padded["action"], torch.tensor([[0.2, 0.0]]))


def test_candidates_stay_in_the_goal_range():
    far = _segment([0.3, 0.0], [-0.4, 0.2])
    far["next", "observation"] = torch.tensor([2.0, -3.0])  # travelled outside the range
    out = hiro_relabel(torch.stack([far]), lambda o, g: torch.zeros_like(g), goal_low=-0.5,
                       goal_high=0.5, num_candidates=16)
    assert bool((out["action"].abs() <= 0.5).all())


def test_bad_input_is_named():
    batch = torch.stack([_segment([0.3, 0.0], [-0.4, 0.2])])
    with pytest.raises(ValueError, match="num_candidates must be an int >= 0, found -1"):
        hiro_relabel(batch, _low_actor, goal_low=-1, goal_high=1, num_candidates=-1)
    with pytest.raises(KeyError, match="needs the segments' steps under"):
        hiro_relabel(batch.exclude(("hrl", "steps")), _low_actor, goal_low=-1, goal_high=1)
    wrong = batch.clone()
    wrong["action"] = torch.zeros(1, 3)
    with pytest.raises(ValueError, match=r"must have the shape of the goal entry"):
        hiro_relabel(wrong, _low_actor, goal_low=-1, goal_high=1)
