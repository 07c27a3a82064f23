"""from_module / to_module / vmap with every module, and EnsembleModule."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.data.specs import Bounded, OneHot
from streamrl.modules import (
    MLP,
    Actor,
    ConvNet,
    DuelingMlpDQNet,
    EnsembleModule,
    ExplorationType,
    GRUModule,
    LSTMModule,
    NormalParamExtractor,
    ProbabilisticActor,
    QValueActor,
    SafeModule,
    TanhNormal,
    ValueOperator,
    set_exploration_type,
    stack_params,
)


def _prob_actor():
    net = TensorDictModule(nn.Sequential(MLP(in_features=3, out_features=4, num_cells=[8]),
                                         NormalParamExtractor()),
                           in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(net, distribution_class=TanhNormal, return_log_prob=True)


def _cases():
    obs = torch.randn(5, 3)
    return {
        "mlp_value": (ValueOperator(MLP(in_features=5, out_features=1, num_cells=[8]),
                                    in_keys=["observation", "action"]),
                      TensorDict({"observation": obs, "action": torch.randn(5, 2)}, [5])),
        "convnet": (TensorDictModule(ConvNet(in_features=1, num_cells=[2], kernel_sizes=3),
                                     in_keys=["pixels"], out_keys=["feat"]),
                    TensorDict({"pixels": torch.randn(5, 1, 6, 6)}, [5])),
        "safe_actor": (Actor(nn.Linear(3, 2), spec=Bounded(-1.0, 1.0, shape=(2,)), safe=True),
                       TensorDict({"observation": obs * 10}, [5])),
        "safe_module": (SafeModule(nn.Linear(3, 2), in_keys=["observation"], out_keys=["x"]),
                        TensorDict({"observation": obs}, [5])),
        "prob_actor": (_prob_actor(), TensorDict({"observation": obs}, [5])),
        "qvalue": (QValueActor(DuelingMlpDQNet(3, mlp_kwargs_feature={"in_features": 3, "num_cells": [8],
                                                                "out_features": 8},
                                            mlp_kwargs_output={"num_cells": [8]}),
                               spec=OneHot(3)),
                   TensorDict({"observation": obs}, [5])),
        "lstm": (LSTMModule(3, 4, in_key="observation", out_key="feat"),
                 TensorDict({"observation": obs}, [5])),
        "gru_seq": (GRUModule(3, 4, in_key="observation", out_key="feat").set_recurrent_mode(),
                    TensorDict({"observation": torch.randn(2, 5, 3)}, [2, 5])),
    }


@pytest.mark.parametrize("name", sorted(_cases()))
def test_functional_call_and_vmap(name):
    """The seed's flow: params = from_module(m); with params.to_module(m): m(td); vmap over
    expanded params; here with 3 different parameter sets, checked against a loop."""
    torch.manual_seed(0)
    module, td = _cases()[name]
    params = TensorDict.from_module(module)
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        ref = module(td.clone())
        with params.to_module(module):
            again = module(td.clone())
        for key in module.out_keys:
            torch.testing.assert_close(again[key], ref[key])
        stacked = torch.stack([params.apply(lambda p, i=i: p + 0.01 * i) for i in range(3)]).data

        def run(p, data):
            with p.to_module(module):
                return module(data)

        out = torch.vmap(run, (0, None))(stacked, td.clone())
        assert out.batch_size == (3, *td.batch_size)
        for i in range(3):
            with stacked[i].to_module(module):
                expected = module(td.clone())
            for key in module.out_keys:
                torch.testing.assert_close(out[i][key], expected[key], rtol=1e-5, atol=1e-5)


def _critic():
    return ValueOperator(MLP(in_features=5, out_features=1, num_cells=[16, 16]),
                         in_keys=["observation", "action"])


class TestEnsemble:
    def test_equals_python_loop_and_independent_init(self):
        torch.manual_seed(0)
        twin = EnsembleModule(_critic(), num_copies=3)
        td = TensorDict({"observation": torch.randn(7, 3), "action": torch.randn(7, 2)}, [7])
        out = twin(td)
        assert out.batch_size == (3, 7)
        assert "state_action_value" not in td.keys()  # input untouched
        values = out["state_action_value"]
        for i in range(3):
            copy_i = twin.copy_module(i)
            torch.testing.assert_close(values[i], copy_i(td.clone())["state_action_value"])
        assert not torch.allclose(values[0], values[1])
        w = twin.params["module", "0", "weight"]
        assert not torch.equal(w[0], w[1])

    def test_parameters_and_gradients(self):
        critic = _critic()
        twin = EnsembleModule(critic, num_copies=2)
        params = list(twin.parameters())
        assert all(p.shape[0] == 2 for p in params)
        assert sum(p.numel() for p in params) == 2 * sum(p.numel() for p in critic.parameters())
        td = TensorDict({"observation": torch.randn(4, 3), "action": torch.randn(4, 2)}, [4])
        twin(td)["state_action_value"].min(0).values.sum().backward()
        assert all(p.grad is not None for p in params)
        assert all(p.grad is None for p in critic.parameters())
        opt = torch.optim.SGD(twin.parameters(), lr=0.1)
        before = twin.params.clone()
        opt.step()
        assert not torch.equal(before["module", "0", "weight"], twin.params["module", "0", "weight"])

    def test_chained_with_expand_input_false_and_state_dict(self):
        first = EnsembleModule(TensorDictModule(nn.Linear(3, 4), ["x"], ["h"]), 2)
        second = EnsembleModule(TensorDictModule(nn.Linear(4, 1), ["h"], ["y"]), 2,
                                expand_input=False)
        out = TensorDictSequential(first, second)(TensorDict({"x": torch.randn(5, 3)}, [5]))
        assert out["y"].shape == (2, 5, 1)
        with pytest.raises(ValueError, match="leading dim of 2"):
            second(TensorDict({"h": torch.randn(5, 4)}, [5]))
        clone = EnsembleModule(TensorDictModule(nn.Linear(3, 4), ["x"], ["h"]), 2)
        clone.load_state_dict(first.state_dict())
        td = TensorDict({"x": torch.randn(5, 3)}, [5])
        torch.testing.assert_close(clone(td)["h"], first(td)["h"])

    def test_errors_and_stack_params(self):
        with pytest.raises(ValueError, match="lazy"):
            EnsembleModule(TensorDictModule(MLP(out_features=1), ["x"], ["y"]), 2)
        with pytest.raises(TypeError, match="TensorDictModule"):
            EnsembleModule(nn.Linear(2, 2), 2)
        with pytest.raises(ValueError, match="num_copies"):
            stack_params(nn.Linear(2, 2), 0)
        params = stack_params(nn.Linear(2, 3), 4)
        assert params.batch_size == (4,) and params["weight"].shape == (4, 3, 2)
        with pytest.raises(IndexError):
            EnsembleModule(TensorDictModule(nn.Linear(2, 2), ["x"], ["y"]), 2).copy_module(2)
