"""A policy of plain ``TensorDictModule``\\ s, run on a dict of tensors instead of a TensorDict.

A collection loop calls its policy once per step. When the policy is a ``TensorDictModule``
(or a ``TensorDictSequential`` of them) that only reads and writes tensors under string keys,
what the call does is fixed: read the in-keys, call the wrapped module, write the out-keys.
:func:`tensor_plan` writes that down once as ``(module, in_keys, out_keys)`` steps and
:func:`run_plan` runs them on a plain dict, which skips the TensorDict machinery around each
call (dispatch, key unravelling, ``set`` with its checks: about 10 us per step, as much as a
CartPole step). A module may also write its own step (a ``_plan_step(key_ok)`` method
returning ``(fn, in_keys, out_keys)`` or ``None``: :class:`~streamrl.modules.QValueModule`).
Anything else (hooks, ``skip_existing``, keyword in-keys, another ``forward``, ``inplace``
other than True, ``selected_out_keys``) gets ``None``: the caller keeps calling the policy on
TensorDicts.

>>> import torch
>>> from tensordict.nn import TensorDictModule
>>> policy = TensorDictModule(torch.nn.Linear(3, 2), in_keys=["observation"], out_keys=["action"])
>>> plan = tensor_plan(policy)
>>> [(ins, outs) for _, ins, outs in plan]
[(('observation',), ('action',))]
>>> vals = {"observation": torch.zeros(3)}
>>> run_plan(plan, vals)["action"].shape
torch.Size([2])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictSequential,
    skip_existing,
)
from tensordict.nn.probabilistic import interaction_type
from torch import nn
from torch.nn.modules import module as _nn_module

from streamrl._utils.direct_modules import direct_call

try:  # the draw-and-score helper of tensordict 0.15 (without it, no sampler is planned)
    from tensordict.nn.probabilistic import (
        _get_joint_sample_and_log_prob as _joint_sample_and_log_prob,
    )
except ImportError:  # pragma: no cover - another tensordict
    _joint_sample_and_log_prob = None

Plan = list[tuple[Callable[..., Any], tuple[str, ...], tuple[str, ...]]]


def tensor_plan(policy: Any, nested: bool = False) -> Plan | None:
    """The steps of ``policy`` as ``(module, in_keys, out_keys)``, or ``None`` when its call
    does more than read, call and write (see the module docstring). ``nested``: keys may
    also be nested (tuples of strings, e.g. an agent group's ``("agents", "observation")``);
    the caller then reads and writes them in a TensorDict."""
    if not plans_allowed():
        return None
    steps: Plan = []
    return steps if _flatten(policy, steps, _nested_key if nested else _str_key) else None


def _str_key(key: Any) -> bool:
    return type(key) is str


def _nested_key(key: Any) -> bool:
    return type(key) is str or (type(key) is tuple and all(type(k) is str for k in key))


def run_plan(plan: Plan, vals: dict[str, Any]) -> dict[str, Any]:
    """Run ``plan`` on ``vals`` (updated in place with every step's outputs, as the policy
    would write them into a TensorDict) and return ``vals``."""
    for fn, ins, outs in plan:
        out = fn(*[vals[k] for k in ins])
        if out is None:
            out = ()
        elif type(out) is not torch.Tensor and type(out) is not tuple and isinstance(
            out, (dict, TensorDictBase)
        ) and all(k in out for k in outs):
            out = tuple(out[k] for k in outs)
        if not isinstance(out, tuple):
            out = (out,)
        if len(out) != len(outs):  # TensorDictModule's own errors
            if len(out) > len(outs):
                raise RuntimeError(
                    f"There are more tensors ({len(out)=}) than out_keys ({list(outs)=})."
                )
            raise RuntimeError("There are more out_keys than tensors.")
        for k, v in zip(outs, out):
            vals[k] = v if type(v) is torch.Tensor else TensorDict.from_any(v)
    return vals


def plans_allowed() -> bool:
    """Whether a plan may stand for the modules' call now: no global module hooks (they
    would see every call) and no ``skip_existing`` (modules would skip outputs present)."""
    return not (skip_existing() or global_module_hooks())


def global_module_hooks() -> bool:
    """Whether forward (pre-)hooks are registered for every module (they would see every
    call a plan skips)."""
    return bool(_nn_module._global_forward_hooks or _nn_module._global_forward_pre_hooks)


def _no_hooks(m: nn.Module) -> bool:
    return not (m._forward_hooks or m._forward_pre_hooks)


class SampleStep:
    """A plan step standing for a ``ProbabilisticTensorDictModule``'s call: builds the
    distribution from the parameters, draws the value as the module would under the current
    interaction type (its own ``_dist_sample``; the joint ``rsample_and_log_prob`` /
    ``sample_and_log_prob`` when it also scores the draw), and returns the value and, with
    ``return_log_prob``, its log-probability."""

    def __init__(self, module: ProbabilisticTensorDictModule) -> None:
        self.module = module
        self.dist_keys = tuple(k[-1] if isinstance(k, tuple) else k for k in module.dist_keys)

    def dist(self, *params: Any) -> torch.distributions.Distribution:
        """The module's distribution with ``params`` (in its ``in_keys`` order)."""
        m = self.module
        return m.distribution_class(**dict(zip(self.dist_keys, params)),
                                    **dict(m.distribution_kwargs))

    def __call__(self, *params: Any) -> Any:
        m = self.module
        dist = self.dist(*params)
        kind = interaction_type()
        joint = None
        if m.return_log_prob and (kind or m.default_interaction_type) is InteractionType.RANDOM:
            joint = _joint_sample_and_log_prob(dist)
        log_prob = None
        if joint is not None:
            value, log_prob = joint(torch.Size(()))
        else:
            value = m._dist_sample(dist, interaction_type=kind)
        if not m.return_log_prob:
            return value
        return value, dist.log_prob(value) if log_prob is None else log_prob


def _sample_step(m: ProbabilisticTensorDictModule,
                 key_ok: Callable[[Any], bool] = _str_key,
                 ) -> tuple[SampleStep, tuple, tuple] | None:
    """``m`` as a :class:`SampleStep` ``(step, in_keys, out_keys)``, or None when its call does
    more than draw one value (a generator, ``num_samples``, several or nested keys, a
    composite distribution, another ``forward``)."""
    from tensordict.nn.distributions import CompositeDistribution

    ins, outs = list(m.in_keys), list(m.dist_sample_keys)
    if (type(m).forward is not ProbabilisticTensorDictModule.forward
            or type(m).get_dist is not ProbabilisticTensorDictModule.get_dist
            or _joint_sample_and_log_prob is None
            or getattr(m, "_generator", None) is not None
            or getattr(m, "_generator_key", None) is not None
            or m.num_samples is not None
            or len(outs) != 1
            or not isinstance(m.distribution_class, type)
            or issubclass(m.distribution_class, CompositeDistribution)
            or not all(key_ok(k) for k in ins + outs)
            or "_" in outs):
        return None
    if m.return_log_prob:
        if not key_ok(m.log_prob_key):
            return None
        outs.append(m.log_prob_key)
    return SampleStep(m), tuple(ins), tuple(outs)


def split_probabilistic(
    m: ProbabilisticTensorDictSequential,
) -> tuple[list[nn.Module], ProbabilisticTensorDictModule] | None:
    """``(modules before the last, the last)`` of a probabilistic sequence whose last module
    builds the distribution and none before it is probabilistic (one would sample under the
    sequence's interaction type: not planned); None otherwise."""
    *body, last = list(m._module_iter())
    if not isinstance(last, ProbabilisticTensorDictModule) or any(
            isinstance(sub, (ProbabilisticTensorDictModule, ProbabilisticTensorDictSequential))
            for sub in body):
        return None
    return body, last


def _flatten(m: Any, steps: Plan, key_ok: Callable[[Any], bool]) -> bool:
    if not isinstance(m, nn.Module) or not _no_hooks(m):
        return False
    if isinstance(m, ProbabilisticTensorDictSequential):
        # its call: the modules before the last run (a probabilistic one among them samples
        # under the sequence's interaction type: not planned), then the last draws the value
        after = getattr(m, "_plan_steps_after", lambda: [])()  # a subclass's extra steps
        if (getattr(type(m), "_plan_forward", type(m).forward)
                is not ProbabilisticTensorDictSequential.forward
                or after is None
                or m.return_composite
                or not m._requires_sample
                or getattr(m, "_select_before_return", False)
                or getattr(m, "inplace", None) not in (None, True)
                or getattr(m, "partial_tolerant", False)):
            return False
        split = split_probabilistic(m)
        if split is None or not _no_hooks(split[1]):
            return False
        body, last = split
        step = _sample_step(last, key_ok)
        if step is None or not all(_flatten(sub, steps, key_ok) for sub in body):
            return False
        steps.append(step)
        steps.extend(after)
        return True
    if isinstance(m, TensorDictSequential):
        if (type(m).forward is not TensorDictSequential.forward
                or getattr(m, "_select_before_return", False)
                or getattr(m, "inplace", None) not in (None, True)  # both write in place
                or getattr(m, "partial_tolerant", False)):
            return False
        return all(_flatten(sub, steps, key_ok) for sub in m._module_iter())
    planned = getattr(m, "_plan_step", None)
    if planned is not None:  # a module that writes its own step (e.g. QValueModule)
        step = planned(key_ok)
        if step is None:
            return False
        steps.append(step)
        return True
    if isinstance(m, TensorDictModule):
        ins, outs = list(m.in_keys), list(m.out_keys)
        if (type(m).forward is not TensorDictModule.forward
                or m._kwargs is not None
                or m.method is not None
                or m.method_kwargs
                or getattr(m, "inplace", True) is not True
                or not all(key_ok(k) for k in ins + outs)
                or "_" in outs
                or list(getattr(m, "out_keys_source", outs)) != outs):
            return False
        steps.append((direct_call(m.module), tuple(ins), tuple(outs)))
        return True
    return False
