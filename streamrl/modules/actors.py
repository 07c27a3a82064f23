"""Actors and value operators: TensorDict modules with RL default keys."""

from __future__ import annotations

import inspect
from typing import Any

from tensordict import TensorDictBase
from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModule,
    TensorDictModuleBase,
)
from tensordict.utils import unravel_key

from streamrl.envs.utils import ExplorationType
from streamrl.modules._spec_utils import ProjectStep, as_composite, project_outputs, safe_specs
from streamrl.modules.distributions import Delta
from streamrl.modules.safe import SafeModule

__all__ = ["Actor", "ProbabilisticActor", "ValueOperator"]


class Actor(SafeModule):
    """A deterministic policy: reads ``in_keys`` (``["observation"]``), writes ``"action"``.

    Same arguments as :class:`SafeModule` with RL defaults.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> actor = Actor(torch.nn.Linear(5, 3), in_keys=["obs"])
    >>> actor(TensorDict({"obs": torch.randn(5)}))["action"].shape
    torch.Size([3])
    """

    def __init__(
        self,
        module: Any,
        in_keys: Any = None,
        out_keys: Any = None,
        *,
        spec: Any = None,
        safe: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            module,
            in_keys=["observation"] if in_keys is None else in_keys,
            out_keys=["action"] if out_keys is None else out_keys,
            spec=spec,
            safe=safe,
            **kwargs,
        )


class ValueOperator(TensorDictModule):
    """A value network: writes ``"state_value"``, or ``"state_action_value"`` when it reads
    ``"action"``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.modules import MLP
    >>> q = ValueOperator(MLP(out_features=1, num_cells=[8]), in_keys=["observation", "action"])
    >>> q.out_keys
    ['state_action_value']
    >>> td = TensorDict({"observation": torch.randn(4, 3), "action": torch.randn(4, 1)}, [4])
    >>> q(td)["state_action_value"].shape
    torch.Size([4, 1])
    """

    def __init__(self, module: Any, in_keys: Any = None, out_keys: Any = None, **kwargs: Any):
        in_keys = ["observation"] if in_keys is None else in_keys
        if isinstance(in_keys, (str, tuple)):
            in_keys = [in_keys]
        if out_keys is None:
            reads_action = any(unravel_key(k) == "action" for k in in_keys)
            out_keys = ["state_action_value"] if reads_action else ["state_value"]
        super().__init__(module, in_keys=in_keys, out_keys=out_keys, **kwargs)


def _fill_bounds(distribution_class: Any, kwargs: dict, spec: Any) -> dict:
    """Give a bounded distribution (TanhNormal...) the bounds of a ``Bounded`` action spec."""
    low, high = getattr(spec, "low", None), getattr(spec, "high", None)
    if low is None or high is None or "low" in kwargs or "high" in kwargs:
        return kwargs
    try:
        params = inspect.signature(distribution_class).parameters
    except (TypeError, ValueError):
        return kwargs
    if "low" in params and "high" in params:
        kwargs = {**kwargs, "low": low, "high": high}
    return kwargs


class ProbabilisticActor(ProbabilisticTensorDictSequential):
    """A stochastic policy: ``module`` writes distribution parameters, then an action is drawn.

    Args:
        module: a TensorDict module writing the parameters (e.g. ``loc`` and ``scale``).
        in_keys: parameter keys read by the distribution (default ``["loc", "scale"]``); a
            dict maps distribution kwargs to keys.
        out_keys: where the value goes (default ``["action"]``).
        spec: action spec; a ``Bounded`` spec also gives ``low``/``high`` to distributions
            that take them (e.g. :class:`~streamrl.modules.TanhNormal`) unless set in
            ``distribution_kwargs``.
        safe: project the action into ``spec``.
        distribution_class / distribution_kwargs: the distribution (default ``Delta``).
        return_log_prob: also write the log-probability at ``log_prob_key`` (default:
            ``"<out_key>_log_prob"``, i.e. ``"action_log_prob"``, as in TorchRL 0.14).
        default_interaction_type: used when no exploration type is set: ``RANDOM`` (sample).
            Under ``set_exploration_type(MODE / MEAN / DETERMINISTIC)`` the action is the
            distribution's ``mode`` / ``mean`` / ``deterministic_sample``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> from streamrl.modules import NormalParamExtractor, TanhNormal
    >>> net = TensorDictModule(torch.nn.Sequential(torch.nn.Linear(3, 4), NormalParamExtractor()),
    ...                        in_keys=["observation"], out_keys=["loc", "scale"])
    >>> actor = ProbabilisticActor(net, distribution_class=TanhNormal, return_log_prob=True)
    >>> td = actor(TensorDict({"observation": torch.randn(5, 3)}, [5]))
    >>> td["action"].shape, td["action_log_prob"].shape
    (torch.Size([5, 2]), torch.Size([5]))
    """

    #: for tensor plans (``streamrl._utils.tensor_plan``): this ``forward`` is the base class's,
    #: then :meth:`_plan_steps_after`
    _plan_forward = ProbabilisticTensorDictSequential.forward

    def _plan_steps_after(self) -> list | None:
        """The steps a tensor plan runs after the base class's call: the projection into the
        spec when ``safe`` (None when a spec'd key is not a plain string)."""
        if not self.safe:
            return []
        if not all(type(k) is str for k in self._specs):
            return None
        keys = tuple(self._specs)
        return [(ProjectStep(self._specs, type(self).__name__), keys, keys)]

    def __init__(
        self,
        module: TensorDictModuleBase,
        in_keys: Any = None,
        out_keys: Any = None,
        *,
        spec: Any = None,
        safe: bool = False,
        distribution_class: Any = Delta,
        distribution_kwargs: dict | None = None,
        return_log_prob: bool = False,
        log_prob_key: Any = None,
        default_interaction_type: ExplorationType = ExplorationType.RANDOM,
        n_empirical_estimate: int = 1000,
    ) -> None:
        if not isinstance(module, TensorDictModuleBase):
            raise TypeError(
                "ProbabilisticActor needs a TensorDict module writing the distribution "
                f"parameters (e.g. TensorDictModule(net, in_keys, ['loc', 'scale'])), got "
                f"{type(module).__name__}"
            )
        in_keys = ["loc", "scale"] if in_keys is None else in_keys
        out_keys = ["action"] if out_keys is None else out_keys
        if isinstance(out_keys, (str, tuple)):
            out_keys = [out_keys]
        out_keys = [unravel_key(k) for k in out_keys]
        specs = safe_specs(spec, out_keys, safe, "ProbabilisticActor")
        kwargs = dict(distribution_kwargs or {})
        if out_keys[0] in specs:
            kwargs = _fill_bounds(distribution_class, kwargs, specs[out_keys[0]])
        sampler = ProbabilisticTensorDictModule(
            in_keys=in_keys,
            out_keys=out_keys,
            distribution_class=distribution_class,
            distribution_kwargs=kwargs,
            return_log_prob=return_log_prob,
            log_prob_key=log_prob_key if len(out_keys) == 1 else None,
            default_interaction_type=default_interaction_type,
            n_empirical_estimate=n_empirical_estimate,
        )
        super().__init__(module, sampler)
        self._specs = specs
        self.safe = safe

    @property
    def spec(self):
        """The action spec(s) as a ``Composite`` keyed by out key."""
        return as_composite(self._specs)

    def forward(self, tensordict: TensorDictBase, *args: Any, **kwargs: Any) -> TensorDictBase:
        out = super().forward(tensordict, *args, **kwargs)
        if self.safe and isinstance(out, TensorDictBase):
            project_outputs(out, self._specs, type(self).__name__)
        return out
