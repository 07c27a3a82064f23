"""How a loss calls its networks: functionally, with given parameters (live, detached,
target or one ensemble copy), through the network's plan where it has one
(:mod:`streamrl.objectives._network_plan`), else with the parameters swapped into its
template for a TensorDict call; an ensemble in one :func:`torch.vmap` call. The
:class:`~streamrl.objectives.common.LossModule` methods of the same names call these."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor

from streamrl._utils.swap import params_in
from streamrl._utils.tensor_plan import plans_allowed
from streamrl.objectives._network_plan import NetworkPlan, build_plan

if TYPE_CHECKING:
    from streamrl.objectives.common import LossModule


@contextmanager
def inputs_named(loss: LossModule, name: str) -> Iterator[None]:
    """A missing input key of network ``name`` reported with the loss and network names."""
    try:
        yield
    except KeyError as err:
        raise KeyError(
            f"{type(loss).__name__}: {name} could not read its input ({err.args[0]})"
        ) from err


def network_plan(loss: LossModule, name: str) -> NetworkPlan | None:
    """Network ``name``'s :class:`NetworkPlan` (built once), or None when it has none or
    plans cannot run now (global hooks, ``skip_existing``)."""
    plans = loss._plans
    if name not in plans:
        plan = None
        if name not in loss._stateful and name not in loss._lazy:
            keys = list(getattr(loss, f"{name}_params").keys(True, True))
            plan = build_plan(loss._templates[name], keys)
        plans[name] = plan
    plan = plans[name]
    return plan if plan is not None and plans_allowed() else None


def call_network(loss: LossModule, name: str, td: TensorDictBase,
                 params: TensorDictBase | None) -> TensorDictBase:
    """See :meth:`LossModule.call_network`."""
    template = loss._templates[name]
    if params is None:
        if name in loss._stateful:
            with inputs_named(loss, name):
                return template(td)
        params = getattr(loss, f"{name}_params")
    plan = network_plan(loss, name)
    if plan is not None and plan.dist is None:  # (a probabilistic one also samples)
        plan.call(params, td, f"{type(loss).__name__}: {name}")
        return td
    with inputs_named(loss, name), params_in(params, template, preserve_module_state=False):
        return template(td)


def network_output(loss: LossModule, name: str, td: TensorDictBase, key_name: str,
                   params: TensorDictBase | None) -> Tensor:
    """See :meth:`LossModule.network_output`."""
    if params is None and name not in loss._stateful:
        params = getattr(loss, f"{name}_params")
    plan = network_plan(loss, name)
    key = loss._keys[key_name]
    if params is not None and plan is not None and plan.dist is None and isinstance(key, str):
        steps, in_keys = plan.steps_for(key)
        owner = f"{type(loss).__name__}: {name}"
        vals = plan.run(plan.leaves(params), plan.inputs(td, owner, keys=in_keys), steps)
        value = vals.get(key)
        if isinstance(value, Tensor):
            return value
    # no plan, or the plan does not write the key: the general call, which names what is
    # missing
    return loss._get(call_network(loss, name, td.copy(), params), key_name)


def network_dist(loss: LossModule, name: str, td: TensorDictBase,
                 params: TensorDictBase | None) -> torch.distributions.Distribution:
    """See :meth:`LossModule.network_dist`."""
    template = loss._templates[name]
    if not hasattr(template, "get_dist"):
        raise TypeError(
            f"{type(loss).__name__}: {name} must be a probabilistic module with get_dist "
            f"(e.g. ProbabilisticTensorDictSequential), found {type(template).__name__}"
        )
    if params is None:
        if name in loss._stateful:
            with inputs_named(loss, name):
                return template.get_dist(td)
        params = getattr(loss, f"{name}_params")
    plan = network_plan(loss, name)
    if plan is not None and plan.dist is not None:
        return plan.dist_from(plan.call(params, td, f"{type(loss).__name__}: {name}"))
    with inputs_named(loss, name), params_in(params, template, preserve_module_state=False):
        return template.get_dist(td)


def vmap_network(loss: LossModule, name: str, td: TensorDictBase,
                 params: TensorDictBase | None) -> TensorDictBase:
    """See :meth:`LossModule.vmap_network`."""
    template = loss._templates[name]
    if params is None:
        params = getattr(loss, f"{name}_params")

    def _one(data: TensorDictBase, p: TensorDictBase) -> TensorDictBase:
        with params_in(p, template, preserve_module_state=False):
            return template(data)

    with inputs_named(loss, name):
        if loss.deactivate_vmap:
            return torch.stack([_one(td.copy(), p) for p in params.unbind(0)], 0)
        return torch.vmap(_one, (None, 0), randomness="different")(td, params)


def ensemble_output(loss: LossModule, name: str, td: TensorDictBase, key: NestedKey,
                    params: TensorDictBase | None,
                    overrides: dict[NestedKey, Tensor] | None) -> Tensor:
    """See :meth:`LossModule.ensemble_output`."""
    if params is None:
        params = getattr(loss, f"{name}_params")
    plan = network_plan(loss, name)
    if plan is not None and plan.dist is None and isinstance(key, str):
        inputs = plan.inputs(td, f"{type(loss).__name__}: {name}", overrides)
        leaves = plan.leaves(params)
        copies = (list(zip(*(leaf.unbind(0) for leaf in leaves))) if leaves
                  else [()] * params.batch_size[0])
        outs = [plan.run(list(one), inputs).get(key) for one in copies]
        if all(isinstance(out, Tensor) for out in outs):
            return torch.stack(outs, 0)
    work = td.copy()
    for k, v in (overrides or {}).items():
        work.set(k, v)
    out = vmap_network(loss, name, work, params)
    loss._require(out, key)
    return out.get(key)


class NetworkCaller:
    """Calls one of a loss's networks with detached live parameters, or with its target
    parameters (``target=True``), for value estimators."""

    def __init__(self, loss: LossModule, name: str, target: bool = False) -> None:
        self.loss = loss
        self.name = name
        self.target = target

    def __call__(self, td: TensorDictBase) -> TensorDictBase:
        return self.loss.call_network(
            self.name, td, self.loss.network_params(self.name, target=self.target, detach=True)
        )

    def call_with(self, td: TensorDictBase, params: TensorDictBase) -> TensorDictBase:
        """The network with ``params`` given by the caller (``value_estimator(td,
        params=loss.critic_network_params, target_params=...)``, as TorchRL's multi-agent
        PPO tutorial calls it)."""
        return self.loss.call_network(self.name, td, params)


class DistCaller:
    """Gives one of a loss's probabilistic networks, with detached live parameters, as a
    ``get_dist`` (for the V-trace estimator)."""

    def __init__(self, loss: LossModule, name: str) -> None:
        self.loss = loss
        self.name = name

    def get_dist(self, td: TensorDictBase) -> torch.distributions.Distribution:
        return self.loss.network_dist(
            self.name, td, self.loss.network_params(self.name, detach=True)
        )
