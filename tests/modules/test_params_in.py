"""params_in: parameters swapped into a module for a block, restored on any exit, and a
Ctrl-C inside the block raised as itself (tensordict's ``with params.to_module(m):`` turned
it into "RuntimeError: Converting a tensordict to boolean value is not permitted", which
made an interrupted ``streamrl run ppo_cartpole`` exit 1 with a traceback about one time in
ten instead of 130)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule

from streamrl._utils.swap import params_in
from streamrl.modules import ProbabilisticActor, ValueOperator
from streamrl.modules.distributions import Categorical
from streamrl.objectives import ClipPPOLoss


class Interrupting(torch.nn.Module):
    """A linear layer whose forward raises ``Interrupting.error`` when it is set (a class
    attribute: losses call copies of their networks)."""

    error = None

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x):
        if Interrupting.error is not None:
            raise Interrupting.error
        return self.linear(x)


@pytest.fixture(autouse=True)
def _disarm():
    yield
    Interrupting.error = None


@pytest.mark.parametrize("error", [KeyboardInterrupt(), ValueError("bad input")])
def test_any_exit_restores_the_parameters_and_keeps_the_error(error):
    net = Interrupting()
    own = {k: v.clone() for k, v in net.state_dict().items()}
    zeros = TensorDict.from_module(net).data.clone().zero_()
    with params_in(zeros, net), torch.no_grad():
        assert float(net(torch.ones(3)).abs().sum()) == 0.0
    Interrupting.error = error
    with pytest.raises(type(error)):
        with params_in(zeros, net):
            net(torch.ones(3))
    for k, v in net.state_dict().items():
        assert torch.equal(v, own[k]), k


def test_ctrl_c_in_a_loss_is_a_keyboard_interrupt():
    net = Interrupting()
    actor = ProbabilisticActor(TensorDictModule(net, in_keys=["observation"], out_keys=["logits"]),
                               in_keys=["logits"], distribution_class=Categorical,
                               return_log_prob=True)
    critic = ValueOperator(torch.nn.Linear(3, 1), in_keys=["observation"])
    loss = ClipPPOLoss(actor, critic)
    batch = TensorDict({"observation": torch.randn(4, 3), "action": torch.zeros(4, dtype=torch.long),
                        "action_log_prob": torch.zeros(4), "advantage": torch.randn(4, 1),
                        "value_target": torch.randn(4, 1)}, [4])
    loss(batch)
    Interrupting.error = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        loss(batch)
