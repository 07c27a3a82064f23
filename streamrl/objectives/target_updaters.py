"""Target-network updaters: SoftUpdate (Polyak averaging) and HardUpdate (periodic copy)."""

from __future__ import annotations

import torch

from streamrl.objectives.common import LossModule

__all__ = ["HardUpdate", "SoftUpdate", "TargetNetUpdater"]


class TargetNetUpdater:
    """Base class: pairs every ``target_<name>_params`` of a loss with its live parameters.

    Call :meth:`step` once per optimizer step. :meth:`init_` copies the live parameters
    into the targets (the loss already does so when it is built).
    """

    def __init__(self, loss_module: LossModule) -> None:
        if not isinstance(loss_module, LossModule):
            raise TypeError(
                f"expected a streamrl LossModule, found {type(loss_module).__name__}"
            )
        if not loss_module.target_network_names:
            raise ValueError(
                f"{type(loss_module).__name__} has no target parameters (was it built with "
                "delay_value/delay_actor/delay_qvalue=False?)"
            )
        self.loss_module = loss_module
        loss_module._has_update_associated = True

    def _pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        targets, sources = [], []
        for name in self.loss_module.target_network_names:
            target = self.loss_module.network_params(name, target=True)
            source = self.loss_module.network_params(name, detach=True)
            for key, t in target.items(True, True):
                targets.append(t)
                sources.append(source.get(key))
        return targets, sources

    @torch.no_grad()
    def init_(self) -> None:
        """Copy the live parameters into the targets."""
        targets, sources = self._pairs()
        for t, s in zip(targets, sources):
            t.copy_(s)

    def step(self) -> None:
        """Update the targets after one optimizer step."""
        raise NotImplementedError


class SoftUpdate(TargetNetUpdater):
    """Polyak averaging: ``target <- (1 - tau) * target + tau * live`` at every :meth:`step`.

    Give ``tau`` or, as TorchRL does, ``eps = 1 - tau`` (not both). Integer buffers (step
    counters and the like) are copied.

    >>> # updater = SoftUpdate(loss, tau=0.005); ...; optim.step(); updater.step()
    """

    def __init__(self, loss_module: LossModule, *, tau: float | None = None,
                 eps: float | None = None) -> None:
        super().__init__(loss_module)
        if tau is not None and eps is not None:
            raise ValueError(f"give tau or eps (= 1 - tau), not both (found tau={tau}, eps={eps})")
        if eps is not None:
            if not isinstance(eps, (int, float)):
                raise ValueError(f"eps must be a float in [0, 1), found {eps!r}")
            tau = 1.0 - float(eps)
        elif tau is None:
            tau = 0.005
        if not isinstance(tau, (int, float)) or not 0.0 < float(tau) <= 1.0:
            raise ValueError(f"tau must be a float in (0, 1], found {tau!r}")
        self.tau = float(tau)

    @torch.no_grad()
    def step(self) -> None:
        """Move every target parameter a fraction ``tau`` of the way to its live value."""
        targets, sources = self._pairs()
        float_t = [t for t in targets if t.is_floating_point()]
        float_s = [s for t, s in zip(targets, sources) if t.is_floating_point()]
        if float_t:
            torch._foreach_lerp_(float_t, float_s, self.tau)
        for t, s in zip(targets, sources):
            if not t.is_floating_point():
                t.copy_(s)


class HardUpdate(TargetNetUpdater):
    """Copy the live parameters into the targets every ``period`` calls to :meth:`step`.

    ``value_network_update_interval`` (TorchRL's name, default 1000; an integral float such
    as ``1e3`` is accepted) sets the period unless ``period`` is given.

    >>> # updater = HardUpdate(loss, value_network_update_interval=100)
    """

    def __init__(self, loss_module: LossModule, *, period: int | None = None,
                 value_network_update_interval: float = 1000) -> None:
        super().__init__(loss_module)
        if period is not None and value_network_update_interval != 1000:
            raise ValueError(
                "give period or its TorchRL name value_network_update_interval, not both "
                f"(found {period} and {value_network_update_interval})"
            )
        if period is None:
            period = value_network_update_interval
            if isinstance(period, float) and period.is_integer():
                period = int(period)
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ValueError(
                f"period (value_network_update_interval) must be a positive int, found {period!r}"
            )
        self.period = period
        self.counter = 0

    def step(self) -> None:
        """Count one step; copy the parameters when the count reaches a multiple of ``period``."""
        self.counter += 1
        if self.counter % self.period == 0:
            self.init_()

    def state_dict(self) -> dict[str, int]:
        """The step counter, to resume the copy schedule."""
        return {"counter": self.counter}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore the step counter."""
        self.counter = int(state["counter"])
