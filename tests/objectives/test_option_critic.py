"""OptionCriticLoss: each term against a hand-computed two-step case (tabular heads), where
the gradients go (the target and the termination weight are constants), keys and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.objectives import OptionCriticLoss


class _Table(nn.Module):
    """Tabular heads over one-hot states: Q [3, 2], beta [3, 2], logits [3, 2, 2]."""

    def __init__(self):
        super().__init__()
        self.q = nn.Parameter(torch.tensor([[0.5, 2.0], [1.5, 0.0], [4.0, 3.0]]))
        self.beta = nn.Parameter(torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.2, 0.25]]))
        logits = torch.zeros(3, 2, 2)
        logits[0, 1] = torch.tensor([0.0, math.log(3.0)])  # pi_1(. | s0) = [0.25, 0.75]
        self.logits = nn.Parameter(logits)

    def forward(self, obs):
        index = obs.argmax(-1)
        return self.q[index], self.beta[index], self.logits[index]


def _net():
    return TensorDictModule(_Table(), ["observation"],
                            ["option_values", "termination_probs", "option_logits"])


def _batch():
    one_hot = torch.eye(3)
    return TensorDict({
        "observation": one_hot[[0, 1]],
        "action": torch.tensor([0, 1]),
        "hrl": {"decision": torch.tensor([[1], [0]])},
        "next": {"observation": one_hot[[2, 2]], "reward": torch.tensor([[1.0], [0.5]]),
                 "done": torch.tensor([[False], [True]]),
                 "terminated": torch.tensor([[False], [True]])},
    }, [2])


def test_the_terms_equal_the_hand_computed_ones():
    loss = OptionCriticLoss(_net(), gamma=0.5, termination_reg=0.1, entropy_coeff=0.01)
    out = loss(_batch())
    # step 0: option 1 in s0, then s2: g = 1 + 0.5 ((1 - 0.25) 3 + 0.25 max(4, 3)) = 2.625
    # step 1: option 0 in s1, the episode ends: g = 0.5
    critic = (0.5 * (2.0 - 2.625) ** 2 + 0.5 * (1.5 - 0.5) ** 2) / 2
    actor = (-math.log(0.25) * (2.625 - 2.0) + -math.log(0.5) * (0.5 - 1.5)) / 2
    termination = (0.25 * (3.0 - 4.0 + 0.1) + 0.0) / 2  # none at the episode's end
    entropy = (-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) + math.log(2.0)) / 2
    assert out["loss_critic"].item() == pytest.approx(critic, rel=1e-6)
    assert out["loss_actor"].item() == pytest.approx(actor, rel=1e-6)
    assert out["loss_termination"].item() == pytest.approx(termination, rel=1e-6)
    assert out["loss_entropy"].item() == pytest.approx(-0.01 * entropy, rel=1e-6)


def test_gradients_reach_only_what_each_term_trains():
    net = _net()
    loss = OptionCriticLoss(net, gamma=0.5, termination_reg=0.1, entropy_coeff=0.0)
    out = loss(_batch())
    table = net.module
    (out["loss_critic"] + out["loss_termination"]).backward()
    expected_q = torch.zeros(3, 2)
    expected_q[0, 1] = (2.0 - 2.625) / 2  # the target is a constant: no gradient into s2's Q
    expected_q[1, 0] = (1.5 - 0.5) / 2
    torch.testing.assert_close(table.q.grad, expected_q)
    expected_beta = torch.zeros(3, 2)
    expected_beta[2, 1] = (3.0 - 4.0 + 0.1) / 2  # beta(s', w) only, its weight a constant
    torch.testing.assert_close(table.beta.grad, expected_beta)
    assert table.logits.grad is None or not table.logits.grad.any()


def test_one_hot_actions_and_renamed_keys():
    loss = OptionCriticLoss(_net(), gamma=0.5, termination_reg=0.1)
    batch = _batch()
    plain = loss(batch)["loss_actor"]
    one_hot = batch.clone()
    one_hot["action"] = torch.nn.functional.one_hot(batch["action"], 2)
    torch.testing.assert_close(loss(one_hot)["loss_actor"], plain)
    renamed = batch.clone()
    renamed["option"] = renamed.pop(("hrl", "decision"))
    loss.set_keys(option="option")
    torch.testing.assert_close(loss(renamed)["loss_actor"], plain)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="network must be a TensorDict module"):
        OptionCriticLoss(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\], found 2"):
        OptionCriticLoss(_net(), gamma=2)
    loss = OptionCriticLoss(_net())
    batch = _batch()
    batch["hrl", "decision"] = torch.tensor([[1], [2]])
    with pytest.raises(IndexError, match=r"options must be in \[0, 2\), found 1 .. 2"):
        loss(batch)
    with pytest.raises(KeyError, match=r"needs the key .*decision.* \(option\)"):
        loss(_batch().exclude(("hrl", "decision")))
