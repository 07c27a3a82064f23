"""The on-policy losses' ``in_keys`` / ``out_keys``, keyword calls
(``loss(observation=..., next_reward=...)`` returning the ``out_keys`` in order) and
``select_out_keys`` / ``reset_out_keys``."""

import pytest
import torch
from tensordict import TensorDict
from test_on_policy_options import _actor, _critic

from streamrl.objectives import A2CLoss, ClipPPOLoss, KLPENPPOLoss, PPOLoss, ReinforceLoss

CLASSES = [PPOLoss, ClipPPOLoss, KLPENPPOLoss, A2CLoss, ReinforceLoss]


def _kwargs(n=5):
    g = torch.Generator().manual_seed(1)
    return {
        "observation": torch.randn(n, 3, generator=g),
        "action": torch.randn(n, 2, generator=g).clamp(-1, 1),
        "action_log_prob": torch.randn(n, generator=g) - 2.0,
        "next_observation": torch.randn(n, 3, generator=g),
        "next_reward": torch.randn(n, 1, generator=g),
        "next_done": torch.zeros(n, 1, dtype=torch.bool),
        "next_terminated": torch.zeros(n, 1, dtype=torch.bool),
    }


def _td(kwargs):
    return TensorDict({("next", k[5:]) if k.startswith("next_") else k: v
                       for k, v in kwargs.items()}, [5])


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("options", [{}, {"critic_coeff": None}, {"entropy_bonus": False},
                                     {"log_explained_variance": False}])
def test_out_keys_are_the_output_entries(cls, options):
    if cls is ReinforceLoss and options:
        pytest.skip("ReinforceLoss has none of these options")
    if cls is A2CLoss and "log_explained_variance" in options:
        pytest.skip("A2CLoss has no explained variance")
    loss = cls(_actor(), _critic(), **options)
    assert list(loss(_td(_kwargs())).keys()) and set(loss.out_keys) == set(
        loss(_td(_kwargs())).keys())


@pytest.mark.parametrize("cls", CLASSES)
def test_keyword_call_returns_the_out_keys_in_order(cls):
    loss = cls(_actor(), _critic())
    kwargs = _kwargs()
    if cls is KLPENPPOLoss:
        kwargs["loc"], kwargs["scale"] = torch.zeros(5, 2), torch.ones(5, 2)
    torch.manual_seed(0)
    values = loss(**kwargs)
    loss.reset()  # KLPENPPOLoss: the beta the first call adapted
    torch.manual_seed(0)
    out = loss(_td(kwargs))
    values = values if isinstance(values, tuple) else (values,)
    assert len(values) == len(loss.out_keys)
    for key, value in zip(loss.out_keys, values):
        if "entropy" not in key:  # a Monte-Carlo estimate: sampled
            torch.testing.assert_close(value, out[key], msg=key)
    with pytest.raises(TypeError, match="unexpected keyword inputs"):
        loss(**kwargs, bogus=torch.zeros(5))


def test_in_keys():
    loss = PPOLoss(_actor(), _critic())
    assert loss.in_keys == ["action", "action_log_prob", "observation", ("next", "observation"),
                            ("next", "reward"), ("next", "done"), ("next", "terminated")]
    assert {"loc", "scale"} <= set(KLPENPPOLoss(_actor(), _critic()).in_keys)
    assert ("next", "observation") not in PPOLoss(_actor()).in_keys  # no critic to run


def test_select_out_keys():
    loss = A2CLoss(_actor(), _critic())
    assert loss.out_keys == ["loss_objective", "loss_critic", "entropy", "loss_entropy"]
    assert loss.select_out_keys("loss_critic", "loss_objective") is loss
    assert set(loss(_td(_kwargs())).keys()) == {"loss_critic", "loss_objective"}
    critic, objective = loss(**_kwargs())
    out = loss(_td(_kwargs()))
    torch.testing.assert_close(critic, out["loss_critic"])
    torch.testing.assert_close(objective, out["loss_objective"])
    with pytest.raises(ValueError, match="does not write"):
        loss.select_out_keys("loss_actor")
    loss.reset_out_keys()
    assert len(loss(_td(_kwargs())).keys()) == 4
