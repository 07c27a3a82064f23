"""Compatibility with TorchRL 0.14's offline losses (issue 17): each is imported from the path
TorchRL documents it at, its constructor has TorchRL's documented arguments and defaults, and
TorchRL's ways of calling it work (``select_out_keys``, keyword inputs, ``set_keys``)."""

import inspect
import warnings

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn

from streamrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator

pytestmark = pytest.mark.filterwarnings("ignore:No target network updater")

DOCUMENTED = {
    ("streamrl.objectives.iql", "IQLLoss"): dict(
        num_qvalue_nets=2, loss_function="smooth_l1", temperature=1.0, expectile=0.5,
        gamma=None, priority_key=None, separate_losses=False, reduction=None,
        deactivate_vmap=False, scalar_output_mode=None),
    ("streamrl.objectives.iql", "DiscreteIQLLoss"): dict(
        action_space=None, num_qvalue_nets=2, loss_function="smooth_l1", temperature=1.0,
        expectile=0.5, gamma=None, priority_key=None, separate_losses=False, reduction=None,
        scalar_output_mode=None),
    ("streamrl.objectives.cql", "CQLLoss"): dict(
        loss_function="smooth_l1", alpha_init=1.0, min_alpha=None, max_alpha=None,
        action_spec=None, fixed_alpha=False, target_entropy="auto", delay_actor=False,
        delay_qvalue=True, gamma=None, temperature=1.0, min_q_weight=1.0, max_q_backup=False,
        deterministic_backup=True, num_random=10, with_lagrange=False, lagrange_thresh=0.0,
        reduction=None, deactivate_vmap=False, scalar_output_mode=None),
    ("streamrl.objectives.cql", "DiscreteCQLLoss"): dict(
        loss_function="l2", delay_value=True, gamma=None, action_space=None, reduction=None),
    ("streamrl.objectives.td3_bc", "TD3BCLoss"): dict(
        action_spec=None, bounds=None, num_qvalue_nets=2, policy_noise=0.2, noise_clip=0.5,
        alpha=2.5, loss_function="smooth_l1", delay_actor=True, delay_qvalue=True,
        priority_key=None, separate_losses=False, reduction=None, deactivate_vmap=False,
        use_prioritized_weights="auto"),
    ("streamrl.objectives.decision_transformer", "DTLoss"): dict(
        loss_function="l2", reduction=None, device=None),
    ("streamrl.objectives.decision_transformer", "OnlineDTLoss"): dict(
        alpha_init=1.0, min_alpha=None, max_alpha=None, fixed_alpha=False,
        target_entropy="auto", samples_mc_entropy=1, reduction=None, scalar_output_mode=None),
}


@pytest.mark.parametrize("path, name", sorted(DOCUMENTED))
def test_documented_path_and_constructor(path, name):
    import importlib

    import streamrl.objectives as objectives

    cls = getattr(importlib.import_module(path), name)
    assert cls is getattr(objectives, name)
    params = inspect.signature(cls).parameters
    for arg, default in DOCUMENTED[(path, name)].items():
        assert arg in params, f"{name} lacks the documented argument {arg}"
        assert params[arg].default == default, (name, arg, params[arg].default)


def _actor():
    module = TensorDictModule(nn.Sequential(nn.Linear(3, 4), NormalParamExtractor()),
                              in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(module=module, in_keys=["loc", "scale"],
                              distribution_class=TanhNormal)


def _data():
    return TensorDict({
        "observation": torch.randn(5, 3), "action": torch.rand(5, 2) * 1.8 - 0.9,
        ("next", "done"): torch.zeros(5, 1, dtype=torch.bool),
        ("next", "terminated"): torch.zeros(5, 1, dtype=torch.bool),
        ("next", "reward"): torch.randn(5, 1), ("next", "observation"): torch.randn(5, 3),
    }, [5])


def test_iql_torchrl_usage():
    from streamrl.objectives.iql import IQLLoss

    qvalue = ValueOperator(MLP(in_features=5, out_features=1, num_cells=[8]),
                           in_keys=["observation", "action"])
    value = ValueOperator(MLP(in_features=3, out_features=1, num_cells=[8]),
                          in_keys=["observation"])
    loss = IQLLoss(_actor(), qvalue, value)
    assert loss.out_keys == ["loss_actor", "loss_qvalue", "loss_value", "entropy"]
    data = _data()
    loss.select_out_keys("loss_actor", "loss_qvalue")
    kwargs = {"_".join(k) if isinstance(k, tuple) else k: data.get(k) for k in loss.in_keys}
    loss_actor, loss_qvalue = loss(**kwargs)
    assert loss_actor.shape == loss_qvalue.shape == ()
    loss.reset_out_keys().set_keys(priority="my_priority")
    loss(data)
    assert data["my_priority"].shape == (5,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none = IQLLoss(_actor(), qvalue, value, reduction="none", scalar_output_mode="exclude")
    assert none(_data())["loss_value"].shape == (5,)


def test_cql_torchrl_usage():
    from streamrl.data import Bounded
    from streamrl.objectives.cql import CQLLoss

    qvalue = ValueOperator(MLP(in_features=5, out_features=1, num_cells=[8]),
                           in_keys=["observation", "action"])
    loss = CQLLoss(_actor(), qvalue, action_spec=Bounded(-1.0, 1.0, shape=(2,)),
                   with_lagrange=True)
    assert float(loss.target_entropy) == -2.0
    assert loss.out_keys[-1] == "loss_alpha_prime"
    out = loss(_data())
    assert {"loss_cql", "loss_actor_bc", "loss_alpha_prime"} <= set(out.keys())
    with pytest.warns(UserWarning, match="scalar_output_mode"):
        CQLLoss(_actor(), qvalue, reduction="none")
