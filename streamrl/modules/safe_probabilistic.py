"""Probabilistic TensorDict modules that know (and may enforce) the spec of their samples."""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from tensordict.nn import (
    InteractionType,
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
)

from streamrl.modules._spec_utils import as_composite, check_outputs, safe_specs
from streamrl.modules.distributions import Delta
from streamrl.modules.safe_sequence import merged_specs

__all__ = ["SafeProbabilisticModule", "SafeProbabilisticTensorDictSequential"]


class SafeProbabilisticModule(ProbabilisticTensorDictModule):
    """A ``tensordict.nn.ProbabilisticTensorDictModule`` with an output spec.

    It reads distribution parameters at ``in_keys``, builds ``distribution_class`` and writes a
    value at ``out_keys`` (a sample, or the mode/mean per the interaction type).

    Args:
        in_keys: the distribution's parameter keys (a dict maps argument name to key).
        out_keys: where the value goes (default: tensordict's ``["_"]``).
        spec: a leaf spec (for the first out key) or a ``Composite`` keyed by out keys; output
            shapes are checked against it.
        safe: project values that fall outside ``spec`` into it.
        default_interaction_type, distribution_class (default
            :class:`~streamrl.modules.Delta`), distribution_kwargs, return_log_prob,
            log_prob_keys, log_prob_key, cache_dist, n_empirical_estimate, num_samples,
            generator: as for ``ProbabilisticTensorDictModule``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.data.specs import Bounded
    >>> from streamrl.modules import TanhNormal
    >>> module = SafeProbabilisticModule(
    ...     ["loc", "scale"], ["action"], spec=Bounded(-1.0, 1.0, (2,)),
    ...     distribution_class=TanhNormal, return_log_prob=True)
    >>> td = module(TensorDict({"loc": torch.zeros(3, 2), "scale": torch.ones(3, 2)}, [3]))
    >>> td["action"].shape, td["action_log_prob"].shape
    (torch.Size([3, 2]), torch.Size([3]))
    """

    def __init__(
        self,
        in_keys: Any,
        out_keys: Any = None,
        spec: Any = None,
        *,
        safe: bool = False,
        default_interaction_type: InteractionType = InteractionType.DETERMINISTIC,
        distribution_class: type = Delta,
        distribution_kwargs: dict | None = None,
        return_log_prob: bool = False,
        log_prob_keys: list | None = None,
        log_prob_key: Any = None,
        cache_dist: bool = False,
        n_empirical_estimate: int = 1000,
        num_samples: Any = None,
        generator: Any = None,
    ) -> None:
        super().__init__(
            in_keys=in_keys,
            out_keys=out_keys,
            default_interaction_type=default_interaction_type,
            distribution_class=distribution_class,
            distribution_kwargs=distribution_kwargs,
            return_log_prob=return_log_prob,
            log_prob_keys=log_prob_keys,
            log_prob_key=log_prob_key,
            cache_dist=cache_dist,
            n_empirical_estimate=n_empirical_estimate,
            num_samples=num_samples,
            generator=generator,
        )
        self._specs = safe_specs(spec, list(self.out_keys), safe, type(self).__name__)
        self.safe = safe

    @property
    def spec(self):
        """The output specs as a ``Composite`` keyed by out key."""
        return as_composite(self._specs)

    def forward(self, tensordict: TensorDictBase, *args: Any, **kwargs: Any) -> TensorDictBase:
        out = super().forward(tensordict, *args, **kwargs)
        check_outputs(out, self._specs, self.safe, type(self).__name__)
        return out


class SafeProbabilisticTensorDictSequential(ProbabilisticTensorDictSequential):
    """A ``ProbabilisticTensorDictSequential`` ending in a :class:`SafeProbabilisticModule`.

    ``get_dist`` returns the last member's distribution; :attr:`spec` gathers the members'
    specs.

    Args:
        *modules: TensorDict modules, the last one probabilistic.
        partial_tolerant: run only the members whose inputs are present.

    >>> import torch
    >>> from torch import nn
    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> from streamrl.data.specs import Unbounded
    >>> from streamrl.modules import NormalParamExtractor, TanhNormal
    >>> net = TensorDictModule(nn.Sequential(nn.Linear(4, 4), NormalParamExtractor()),
    ...                        ["obs"], ["loc", "scale"])
    >>> head = SafeProbabilisticModule(["loc", "scale"], ["action"], spec=Unbounded(2),
    ...                                distribution_class=TanhNormal)
    >>> seq = SafeProbabilisticTensorDictSequential(net, head)
    >>> seq(TensorDict({"obs": torch.randn(5, 4)}, [5]))["action"].shape
    torch.Size([5, 2])
    """

    def __init__(self, *modules: Any, partial_tolerant: bool = False) -> None:
        if not modules or not isinstance(modules[-1], ProbabilisticTensorDictModule):
            last = type(modules[-1]).__name__ if modules else "nothing"
            raise TypeError(
                f"{type(self).__name__} must end with a probabilistic module "
                f"(e.g. SafeProbabilisticModule), got {last}"
            )
        super().__init__(*modules, partial_tolerant=partial_tolerant)

    @property
    def spec(self):
        """The output specs of the members, as a ``Composite`` keyed by out key."""
        return as_composite(merged_specs(self.module))
