"""A loss's network called on tensors: parameters put straight into their slots, the modules
run on a dict.

:class:`~streamrl.objectives.common.LossModule` calls a network functionally: its
parameters (live, detached, target, or one copy of an ensemble) go into a parameter-less
template for the length of the call. The general way, ``TensorDict.to_module`` around a
TensorDict call, costs about 150 us per call in key handling and TensorDict dispatch; SAC
makes six such calls per update. When the template is a plain ``TensorDictModule`` /
``TensorDictSequential`` (what :func:`~streamrl._utils.tensor_plan.tensor_plan` accepts),
optionally ending in a ``ProbabilisticTensorDictModule`` that builds the distribution, a
:class:`NetworkPlan` does the same call directly:

- the parameter leaves (in the order of the parameter TensorDict's leaves) are assigned to
  the ``(submodule, name)`` slots they belong to, and the template's own (meta) tensors are
  put back afterwards, whatever ends the call;
- the modules run on a dict of the input tensors; the outputs are written into the
  TensorDict as the module would write them.

Anything else (hooks, lazy or stateful networks, a distribution module with nested keys or
``return_composite``) has no plan and keeps the general path. The results are the same
tensors (``tests/objectives/test_network_plan.py`` compares both paths on every loss).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictSequential,
)
from torch import Tensor, nn

from streamrl._utils.tensor_plan import (
    Plan,
    SampleStep,
    run_plan,
    split_probabilistic,
    tensor_plan,
)

Slot = tuple[nn.Module, str, bool]  # (submodule, attribute, is a parameter)


class NetworkPlan:
    """How to call one template on tensors (see the module docstring)."""

    def __init__(self, keys: list[Any], slots: list[Slot], plan: Plan,
                 dist: SampleStep | None, in_keys: tuple[str, ...]) -> None:
        #: the parameter TensorDict's keys, in the order of ``slots``
        self.keys = keys
        self.slots = slots
        self.plan = plan
        self.dist = dist
        self.in_keys = in_keys
        self._steps_for: dict[str, tuple[Plan, tuple[str, ...]]] = {}

    def steps_for(self, key: str) -> tuple[Plan, tuple[str, ...]]:
        """The steps ``key`` depends on and the inputs they read (a value network's later
        steps, e.g. the greedy action a ``QValueModule`` picks from the action values, are
        skipped when only the values are asked for)."""
        found = self._steps_for.get(key)
        if found is None:
            needed = {key}
            kept: Plan = []
            for step in reversed(self.plan):
                _, ins, outs = step
                if needed.intersection(outs):
                    kept.append(step)
                    needed.difference_update(outs)
                    needed.update(ins)
            # the inputs in the order the whole plan reads them
            found = self._steps_for[key] = (kept[::-1],
                                            tuple(k for k in self.in_keys if k in needed))
        return found

    def leaves(self, params: TensorDictBase) -> list[Tensor]:
        """``params``'s tensors under :attr:`keys`, in that order (a ``TensorDictParams`` is
        read through the TensorDict it wraps: the same tensors, without its per-call
        wrapping)."""
        td: Any = getattr(params, "_param_td", params)
        if type(td) is TensorDict:  # its entries straight from the dicts behind it
            try:
                return [_plain_get(td, k) for k in self.keys]
            except (KeyError, AttributeError):  # a key missing, or not a plain TensorDict
                pass
        leaves = [td.get(k, None) for k in self.keys]
        for key, leaf in zip(self.keys, leaves):
            if leaf is None:
                raise KeyError(f"the network's parameters have no entry {key!r} (keys: "
                               f"{sorted(map(str, td.keys(True, True)))})")
        return leaves

    def inputs(self, td: TensorDictBase, owner: str,
               overrides: Mapping[Any, Tensor] | None = None,
               keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """The plan's inputs (or those under ``keys``) read from ``td`` (``overrides`` in
        place of its entries); a missing one raises ``KeyError`` naming ``owner`` (the loss
        and network)."""
        inputs = {}
        for key in self.in_keys if keys is None else keys:
            if overrides is not None and key in overrides:
                inputs[key] = overrides[key]
                continue
            value = td.get(key, None)
            if value is None:
                raise KeyError(
                    f"{owner} could not read its input (key {key!r} not found in "
                    f"{type(td).__name__} with keys {sorted(td.keys())})"
                )
            inputs[key] = value
        return inputs

    def call(self, params: TensorDictBase, td: TensorDictBase, owner: str) -> dict[str, Any]:
        """Run on ``td``'s inputs with ``params`` and write the outputs into ``td``, as the
        modules would; returns every value (for :meth:`dist_from`)."""
        vals = self.run(self.leaves(params), self.inputs(td, owner))
        for _, _, outs in self.plan:
            for key in outs:
                td.set(key, vals[key])
        return vals

    def run(self, leaves: list[Tensor], inputs: Mapping[str, Any],
            steps: Plan | None = None) -> dict[str, Any]:
        """The plan's values (inputs and every output) with ``leaves`` as the parameters;
        with ``steps`` (from :meth:`steps_for`), only those steps' outputs."""
        if len(leaves) != len(self.slots):
            raise RuntimeError(
                f"a network with {len(self.slots)} parameter tensors was given {len(leaves)}"
            )
        saved = [_slot_get(slot) for slot in self.slots]
        try:
            for slot, value in zip(self.slots, leaves):
                _slot_set(slot, value)
            return run_plan(self.plan if steps is None else steps, dict(inputs))
        finally:
            for slot, value in zip(self.slots, saved):
                _slot_set(slot, value)

    def dist_from(self, vals: Mapping[str, Any]) -> torch.distributions.Distribution:
        """The distribution of the plan's final probabilistic module, from ``vals``."""
        assert self.dist is not None
        return self.dist.dist(*(vals.get(k) for k in self.dist.module.in_keys))


def build_plan(template: nn.Module, param_keys: Iterable[Any]) -> NetworkPlan | None:
    """The plan of ``template`` whose parameters are given as leaves under ``param_keys``
    (nested keys of the parameter TensorDict), or ``None`` when it has none."""
    dist = None
    body: Any = template
    if isinstance(template, ProbabilisticTensorDictSequential):
        # get_dist: the modules before the last run, then the last builds the distribution
        split = split_probabilistic(template)
        if (split is None or not split[0] or template.return_composite
                or type(template).get_dist is not ProbabilisticTensorDictSequential.get_dist
                or type(split[1]).get_dist is not ProbabilisticTensorDictModule.get_dist
                or not all(type(k) is str for k in (*split[1].in_keys, *split[1].dist_keys))):
            return None
        dist = SampleStep(split[1])
        body = TensorDictSequential(*split[0])
    plan = tensor_plan(body)
    if plan is None:
        return None
    keys = list(param_keys)
    slots = _slots(template, keys)
    if slots is None:
        return None
    in_keys: list[str] = []
    written: set[str] = set()
    for _, ins, outs in plan:
        in_keys.extend(k for k in ins if k not in written and k not in in_keys)
        written.update(outs)
    if dist is not None:
        in_keys.extend(k for k in dist.module.in_keys if k not in written and k not in in_keys)
    return NetworkPlan(keys, slots, plan, dist, tuple(in_keys))


def _slots(template: nn.Module, keys: Iterable[Any]) -> list[Slot] | None:
    """The ``(submodule, name, is_param)`` slot of every key, or None when the keys are not
    exactly the template's parameters and buffers."""
    slots: list[Slot] = []
    for key in keys:
        path = (key,) if isinstance(key, str) else tuple(key)
        module: nn.Module | None = template
        for part in path[:-1]:
            module = module._modules.get(part) if module is not None else None
        if module is None:
            return None
        name = path[-1]
        if name in module._parameters:
            slots.append((module, name, True))
        elif name in module._buffers:
            slots.append((module, name, False))
        else:
            return None
    expected = sum(1 for _ in template.named_parameters()) + sum(
        1 for _ in template.named_buffers())
    return slots if len(slots) == expected else None


def _plain_get(td: TensorDict, key: Any) -> Any:
    """``td.get(key)`` for a plain TensorDict: the entry read from the dicts it and its
    nested TensorDicts keep their entries in (``KeyError`` / ``AttributeError`` when missing
    or not plain)."""
    if type(key) is str:
        return td._tensordict[key]
    for part in key[:-1]:
        td = td._tensordict[part]
        if type(td) is not TensorDict:
            raise AttributeError(part)
    return td._tensordict[key[-1]]


def _slot_get(slot: Slot) -> Any:
    module, name, is_param = slot
    return (module._parameters if is_param else module._buffers)[name]


def _slot_set(slot: Slot, value: Any) -> None:
    module, name, is_param = slot
    (module._parameters if is_param else module._buffers)[name] = value
