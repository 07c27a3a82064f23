"""QValueHook, DistributionalQValueHook, DistributionalDQNnet and the removed wrappers."""

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.modules import (
    Actor,
    AdditiveGaussianWrapper,
    DistributionalDQNnet,
    DistributionalQValueHook,
    EGreedyWrapper,
    NormalParamWrapper,
    OrnsteinUhlenbeckProcessWrapper,
    QValueHook,
)


class _Fixed(nn.Module):
    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, x):
        return self.out


def test_qvalue_hook_categorical_hand_computed():
    values = torch.tensor([[1.0, 3.0, 2.0], [5.0, -1.0, 0.0]])
    net = _Fixed(values)
    net.register_forward_hook(QValueHook("categorical"))
    action, action_value, chosen = net(torch.zeros(2, 1))
    assert action.tolist() == [1, 0] and action.dtype == torch.long
    assert torch.equal(action_value, values)
    assert chosen.tolist() == [[3.0], [5.0]]


def test_qvalue_hook_one_hot_and_custom_out_keys():
    net = _Fixed(torch.tensor([[0.0, 2.0, 1.0]]))
    net.register_forward_hook(QValueHook("one-hot", out_keys=["act", "q", "q_chosen"]))
    action, _, chosen = net(torch.zeros(1, 1))
    assert action.tolist() == [[0, 1, 0]] and chosen.tolist() == [[2.0]]


def test_qvalue_hook_inside_an_actor():
    net = nn.Linear(4, 3)
    net.register_forward_hook(QValueHook("categorical"))
    actor = Actor(net, in_keys=["observation"],
                  out_keys=["action", "action_value", "chosen_action_value"])
    td = actor(TensorDict({"observation": torch.randn(5, 4)}, [5]))
    assert torch.equal(td["action"], td["action_value"].argmax(-1))


def test_distributional_hook_picks_the_highest_expected_return():
    # 2 atoms (returns -1, +1), 2 actions: action 1 puts 0.9 on +1, action 0 only 0.2
    probs = torch.tensor([[[0.8, 0.1], [0.2, 0.9]]])
    net = _Fixed(probs.log())
    net.register_forward_hook(DistributionalQValueHook("categorical",
                                                       support=torch.tensor([-1.0, 1.0])))
    action, logp = net(torch.zeros(1, 1))
    assert action.tolist() == [1] and torch.equal(logp, probs.log())


def test_distributional_dqn_net_normalises_over_atoms():
    logits = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])  # 2 atoms equal per action: 1/2 each
    td = DistributionalDQNnet(in_keys=["logits"], out_keys=["logp"])(
        TensorDict({"logits": logits}, [1]))
    torch.testing.assert_close(td["logp"].exp(), torch.full((1, 2, 2), 0.5))
    assert torch.equal(td["logits"], logits)


def test_hook_and_dqnnet_bad_input():
    with pytest.raises(ValueError, match="action_space"):
        QValueHook("binary")
    with pytest.raises(ValueError, match="action_space"):
        QValueHook(None)
    with pytest.raises(ValueError, match="support"):
        DistributionalQValueHook("categorical", support=torch.tensor([1.0]))
    net = _Fixed((torch.zeros(2, 3), torch.zeros(2, 3)))
    net.register_forward_hook(QValueHook("categorical"))
    with pytest.raises(TypeError, match="one tensor"):
        net(torch.zeros(1))
    with pytest.raises(ValueError, match="as many out_keys"):
        DistributionalDQNnet(in_keys=["a", "b"], out_keys=["c"])
    with pytest.raises(KeyError, match="action_value"):
        DistributionalDQNnet()(TensorDict({}, []))
    with pytest.raises(ValueError, match="n_atoms"):
        DistributionalDQNnet()(TensorDict({"action_value": torch.zeros(3)}, []))


@pytest.mark.parametrize("cls, replacement", [
    (EGreedyWrapper, "EGreedyModule"),
    (AdditiveGaussianWrapper, "AdditiveGaussianModule"),
    (OrnsteinUhlenbeckProcessWrapper, "OrnsteinUhlenbeckProcessModule"),
    (NormalParamWrapper, "NormalParamExtractor"),
])
def test_removed_wrappers_name_their_replacement(cls, replacement):
    with pytest.raises(RuntimeError, match=replacement):
        cls(nn.Linear(2, 2), annealing_num_steps=10)
