"""Compatibility with TorchRL 0.14's ``torchrl.modules.tensordict_module`` (and the same names
under ``torchrl.modules``): the safe sequences, the recurrent modules and their mode. Every
name listed here imports from the same path under ``streamrl`` and its documented constructor
and main call work; the names not provided are listed in docs/torchrl_differences.md."""

import importlib

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

NAMES = [
    "Actor", "ActorCriticOperator", "ActorCriticWrapper", "ActorValueOperator",
    "AdditiveGaussianModule", "AdditiveGaussianWrapper", "DistributionalQValueHook",
    "EGreedyModule", "EGreedyWrapper", "OrnsteinUhlenbeckProcessWrapper", "QValueHook", "GRU", "GRUCell", "GRUModule", "LSTM",
    "LSTMCell", "LSTMModule",
    "OrnsteinUhlenbeckProcessModule", "ProbabilisticActor", "QValueActor", "QValueModule",
    "RandomPolicy", "SafeModule", "SafeProbabilisticModule",
    "SafeProbabilisticTensorDictSequential", "SafeSequential", "TanhModule", "ValueOperator",
    "VmapModule", "WorldModelWrapper", "recurrent_mode", "set_recurrent_mode",
    "DistributionalQValueActor", "DistributionalQValueModule",
    "DecisionTransformerInferenceWrapper",
]


@pytest.mark.parametrize("path", ["torchrl.modules", "torchrl.modules.tensordict_module"])
def test_names_import_from_the_same_path(path):
    module = importlib.import_module(path.replace("torchrl", "streamrl", 1))
    top = importlib.import_module("streamrl.modules")
    for name in NAMES:
        obj = getattr(module, name)
        assert obj.__doc__, f"{path}.{name} has no docstring"
        assert obj is getattr(top, name)


def test_safe_sequential_documented_call():
    from streamrl.data.specs import Unbounded
    from streamrl.modules import (
        NormalParamExtractor,
        SafeModule,
        SafeProbabilisticModule,
        SafeProbabilisticTensorDictSequential,
        SafeSequential,
        TanhNormal,
    )

    net1 = TensorDictModule(nn.Sequential(nn.Linear(4, 8), NormalParamExtractor()),
                            in_keys=["input"], out_keys=["loc", "scale"])
    prob = SafeProbabilisticModule(in_keys=["loc", "scale"], out_keys=["hidden"],
                                   spec=Unbounded(4), distribution_class=TanhNormal,
                                   return_log_prob=True)
    module1 = SafeProbabilisticTensorDictSequential(net1, prob, partial_tolerant=False)
    module2 = SafeModule(nn.Linear(4, 8), in_keys=["hidden"], out_keys=["output"],
                         spec=Unbounded(8))
    seq = SafeSequential(module1, module2, partial_tolerant=False, inplace=None)
    td = seq(TensorDict({"input": torch.randn(3, 4)}, [3]))
    assert td["output"].shape == (3, 8) and td["hidden"].shape == (3, 4)
    assert set(seq.spec.keys()) == {"hidden", "output"}


def test_recurrent_modules_documented_arguments_and_mode():
    from streamrl.modules import GRUModule, LSTMModule, recurrent_mode, set_recurrent_mode

    lstm = LSTMModule(input_size=3, hidden_size=5, num_layers=1, bias=True, batch_first=True,
                      dropout=0, proj_size=0, bidirectional=False, python_based=False,
                      in_key="obs", out_key="out", device="cpu", default_recurrent_mode=None)
    gru = GRUModule(3, 5, 1, True, True, 0, False, True, in_keys=["obs", "h", "is_init"],
                    out_keys=["out", ("next", "h")])
    td = TensorDict({"obs": torch.randn(2, 6, 3)}, [2, 6])
    assert recurrent_mode() is None
    with set_recurrent_mode(True):
        assert lstm(td.clone())["out"].shape == (2, 6, 5)
        assert gru(td.clone())["next", "h"].shape == (2, 6, 1, 5)
    with set_recurrent_mode("sequential"):
        assert not lstm.recurrent_mode


def test_vmap_module_and_world_model_documented_calls():
    from streamrl.modules import VmapModule, WorldModelWrapper

    lam = TensorDictModule(lambda x: x[0], in_keys=["x"], out_keys=["y"])
    td = TensorDict({"x": torch.ones((10, 3, 2))}, batch_size=[10])
    VmapModule(lam, 0)(td)
    assert (td["x"][:, 0] == td["y"]).all()
    world = WorldModelWrapper(
        transition_model=TensorDictModule(nn.Linear(3, 3), ["s"], [("next", "s")]),
        reward_model=TensorDictModule(nn.Linear(3, 1), [("next", "s")], [("next", "reward")]),
    )
    assert world(TensorDict({"s": torch.randn(2, 3)}, [2]))["next", "reward"].shape == (2, 1)


def test_python_based_rnn_documented_calls():
    from streamrl.modules.tensordict_module import GRU, LSTM, GRUCell, LSTMCell

    lstm = LSTM(input_size=10, hidden_size=20, num_layers=2, batch_first=True, bias=True,
                dropout=0.0, bidirectional=False, proj_size=0, device="cpu", dtype=None)
    x = torch.randn(2, 4, 10)
    h0, c0 = torch.zeros(2, 2, 20), torch.zeros(2, 2, 20)
    with torch.no_grad():
        out, (h1, c1) = lstm(x, (h0, c0))
    assert out.shape == (2, 4, 20) and h1.shape == c1.shape == (2, 2, 20)
    batched = torch.vmap(lambda xi, h, c: lstm(xi, (h, c))[1])
    h1, c1 = batched(torch.randn(4, 2, 4, 10), torch.zeros(4, 2, 2, 20), torch.zeros(4, 2, 2, 20))
    assert h1.shape == (4, 2, 2, 20)
    gru = GRU(input_size=10, hidden_size=20, num_layers=2, bias=True, batch_first=True)
    assert gru(x, torch.zeros(2, 2, 20))[1].shape == (2, 2, 20)
    h, c = LSTMCell(input_size=10, hidden_size=20, bias=True)(torch.randn(2, 10),
                                                              (torch.zeros(2, 20),) * 2)
    assert h.shape == c.shape == (2, 20)
    assert GRUCell(input_size=10, hidden_size=20)(torch.randn(2, 10)).shape == (2, 20)


def test_qvalue_hooks_documented_examples():
    from streamrl.modules import Actor, DistributionalDQNnet
    from streamrl.modules.tensordict_module import DistributionalQValueHook, QValueHook

    td = TensorDict({"observation": torch.randn(5, 4)}, [5])
    module = nn.Linear(4, 4)
    module.register_forward_hook(QValueHook("one_hot", action_value_key=None, out_keys=None))
    # TorchRL's docstring lists two out_keys; its hook returns three entries, which
    # TensorDictModule refuses there too, so the third key is named here
    td = Actor(module=module, out_keys=["action", "action_value", "chosen_action_value"])(td)
    assert td["action"].shape == (5, 4) and td["action"].dtype == torch.int64
    nbins = 3

    class CustomDistributionalQval(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, nbins * 4)

        def forward(self, x):
            return self.linear(x).view(-1, nbins, 4).log_softmax(-2)

    dist_module = CustomDistributionalQval()
    dist_module.register_forward_hook(
        DistributionalQValueHook("one_hot", support=torch.arange(nbins)))
    td = Actor(module=dist_module, out_keys=["action", "action_value"])(
        TensorDict({"observation": torch.randn(5, 4)}, [5]))
    assert td["action"].shape == (5, 4) and td["action_value"].shape == (5, nbins, 4)
    net = DistributionalDQNnet(in_keys=None, out_keys=None)
    out = net(TensorDict({"action_value": torch.randn(10, 5)}, batch_size=[10]))
    assert out["action_value"].shape == (10, 5)


@pytest.mark.parametrize("name", ["EGreedyWrapper", "AdditiveGaussianWrapper",
                                  "OrnsteinUhlenbeckProcessWrapper"])
def test_removed_exploration_wrappers_raise(name):
    module = importlib.import_module("streamrl.modules.tensordict_module")
    policy = TensorDictModule(nn.Linear(3, 2), ["obs"], ["action"])
    with pytest.raises(RuntimeError, match="Module"):
        getattr(module, name)(policy)


def test_qvalue_modules_take_var_nums_none_and_safe():
    from streamrl.modules import (
        DistributionalQValueActor,
        DistributionalQValueModule,
        QValueActor,
        QValueModule,
    )

    support = torch.tensor([-1.0, 0.0, 1.0])
    QValueModule(action_space="categorical", var_nums=None, safe=True)
    QValueActor(nn.Linear(3, 2), action_space="one_hot", safe=True)
    DistributionalQValueModule("categorical", support, var_nums=None, safe=False)
    net = nn.Sequential(nn.Linear(3, 6), nn.Unflatten(-1, (3, 2)))  # [*B, atoms, actions]
    actor = DistributionalQValueActor(net, support, in_keys=["obs"], var_nums=None, safe=True,
                                      action_space="one_hot")
    td = actor(TensorDict({"obs": torch.randn(4, 3)}, [4]))
    assert td["action"].shape == (4, 2)
    with pytest.raises(ValueError, match="only for action_space='mult_one_hot'"):
        QValueModule(action_space="one_hot", var_nums=3)
    with pytest.raises(ValueError, match="only for action_space='mult_one_hot'"):
        DistributionalQValueActor(nn.Linear(3, 6), support, var_nums=2, action_space="one_hot")
    # "mult-one-hot": one greedy one-hot per component of sizes var_nums
    module = QValueModule(action_space="mult-one-hot", var_nums=[2, 3])
    td = module(TensorDict({"action_value": torch.tensor([[1.0, 2.0, 5.0, 3.0, 4.0]])}, [1]))
    assert td["action"].tolist() == [[0, 1, 1, 0, 0]]
    assert td["chosen_action_value"].tolist() == [[7.0]]
    net = nn.Sequential(nn.Linear(3, 12), nn.Unflatten(-1, (3, 4)))
    actor = DistributionalQValueActor(net, support, in_keys=["obs"], var_nums=[2, 2],
                                      action_space="mult_one_hot")
    td = actor(TensorDict({"obs": torch.randn(5, 3)}, [5]))
    assert (td["action"].reshape(5, 2, 2).sum(-1) == 1).all()
    with pytest.raises(TypeError, match="safe must be a bool"):
        QValueActor(nn.Linear(3, 2), action_space="one_hot", safe="yes")


def test_tensordict_compatibility_helpers():
    from streamrl.data import Bounded
    from streamrl.modules import SafeModule
    from streamrl.modules.tensordict_module.common import (
        ensure_tensordict_compatible,
        is_tensordict_compatible,
    )

    class Keyed(nn.Module):
        def __init__(self):
            super().__init__()
            self.in_keys, self.out_keys = ["x"], ["y"]

        def forward(self, tensordict):
            return tensordict

    class TwoInputs(Keyed):
        def forward(self, a, b):
            return a

    assert not is_tensordict_compatible(nn.Linear(2, 2))
    assert is_tensordict_compatible(Keyed())
    with pytest.raises(TypeError, match="takes 2 inputs"):
        is_tensordict_compatible(TwoInputs())
    module = SafeModule(nn.Linear(2, 2), in_keys=["x"], out_keys=["y"])
    assert ensure_tensordict_compatible(module, in_keys=["x"]) is module
    with pytest.raises(TypeError, match="differ"):
        ensure_tensordict_compatible(module, out_keys=["z"])
    with pytest.raises(TypeError, match=r"nn\.Module"):
        ensure_tensordict_compatible(object())
    with pytest.raises(TypeError, match="give in_keys and out_keys"):
        ensure_tensordict_compatible(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="takes 1 inputs but in_keys has 2"):
        ensure_tensordict_compatible(nn.Linear(2, 2), in_keys=["a", "b"], out_keys=["y"])
    safe = ensure_tensordict_compatible(nn.Linear(2, 2), in_keys=["x"], out_keys=["y"], safe=True,
                                        spec=Bounded(-0.1, 0.1, (2,)))
    td = safe(TensorDict({"x": torch.full((3, 2), 100.0)}, [3]))
    assert isinstance(safe, SafeModule) and td["y"].abs().max() <= 0.1
