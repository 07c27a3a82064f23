"""PendulumEnv: gymnasium's Pendulum written in torch, stateless and batch-unlocked."""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from streamrl.data.specs import Bounded, Composite, Unbounded
from streamrl.envs.common import EnvBase

__all__ = ["PendulumEnv"]

_PARAMS = ("max_speed", "max_torque", "dt", "g", "m", "l")


def _angle_normalize(x: torch.Tensor) -> torch.Tensor:
    return ((x + math.pi) % (2 * math.pi)) - math.pi


class PendulumEnv(EnvBase):
    """A stateless pendulum (the dynamics of gymnasium's ``Pendulum-v1``) in pure torch.

    Stateless: the state (``"th"``, ``"thdot"``) and the physical parameters (``"params"``:
    ``max_speed``, ``max_torque``, ``dt``, ``g``, ``m``, ``l``) travel in the TensorDict, so
    one env steps any batch: it is built with ``batch_size=()`` and ``batch_locked=False``,
    and ``reset(env.gen_params(batch_size=[B]))`` starts ``B`` pendulums. The action is a
    torque of shape ``(*batch, 1)`` (clipped to ``[-max_torque, max_torque]``); the reward is
    ``-(angle**2 + 0.1 * thdot**2 + 0.001 * torque**2)``; episodes never end by themselves
    (add a step limit with a transform). A reset draws ``th`` in ``[-pi, pi]`` and ``thdot``
    in ``[-1, 1]`` from the env's generator (``set_seed``).

    Args:
        td_params: the parameters used when ``reset`` is given none (default
            :meth:`gen_params`).
        seed: seeds the env's generator (a random seed when None).
        device: the device of the tensors.

    >>> env = PendulumEnv(seed=0)
    >>> env.rollout(4)["next", "reward"].shape
    torch.Size([4, 1])
    >>> td = env.reset(env.gen_params(batch_size=[8]))
    >>> env.rollout(4, auto_reset=False, tensordict=td)["next", "th"].shape
    torch.Size([8, 4])
    """

    DEFAULT_X = math.pi
    DEFAULT_Y = 1.0

    def __init__(
        self, td_params: TensorDictBase | None = None, seed: int | None = None, device: Any = None
    ) -> None:
        super().__init__(device=device, batch_size=(), batch_locked=False)
        if td_params is None:
            td_params = self.gen_params(device=self.device)
        if not isinstance(td_params, TensorDictBase) or "params" not in td_params.keys():
            raise TypeError(
                "td_params must be a TensorDict with a 'params' entry (see gen_params), found "
                f"{td_params!r}"
            )
        self.td_params = td_params
        self.rng = torch.Generator()
        self._make_spec(td_params)
        if seed is None:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
        self.set_seed(seed)

    @staticmethod
    def gen_params(g: float = 10.0, batch_size: Any = None, device: Any = None) -> TensorDict:
        """The default parameters (``g`` as given), as ``{"params": {...}}`` expanded to
        ``batch_size``.

        >>> PendulumEnv.gen_params(batch_size=[3])["params", "g"]
        tensor([10., 10., 10.])
        """
        batch_size = torch.Size(batch_size or ())
        values = {"max_speed": 8.0, "max_torque": 2.0, "dt": 0.05, "g": g, "m": 1.0, "l": 1.0}
        params = TensorDict(
            {k: torch.tensor(v, dtype=torch.float32, device=device) for k, v in values.items()},
            batch_size=(),
        )
        td = TensorDict({"params": params}, batch_size=(), device=device)
        return td.expand(batch_size).contiguous() if batch_size else td

    def _make_spec(self, td_params: TensorDictBase) -> None:
        p = td_params["params"]
        max_speed, max_torque = float(p["max_speed"].max()), float(p["max_torque"].max())
        params = Composite(
            {k: Unbounded((), dtype=torch.float32, device=self.device) for k in _PARAMS},
            shape=(),
        )
        state = Composite(
            th=Bounded(-math.pi, math.pi, (), dtype=torch.float32, device=self.device),
            thdot=Bounded(-max_speed, max_speed, (), dtype=torch.float32, device=self.device),
            params=params,
            shape=(),
        )
        self.observation_spec = state.clone()
        self.state_spec = state.clone()
        self.action_spec = Bounded(-max_torque, max_torque, (1,), dtype=torch.float32,
                                   device=self.device)
        self.reward_spec = Unbounded((1,), dtype=torch.float32, device=self.device)

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            self.rng.seed()
        else:
            self.rng.manual_seed(seed)

    def _reset(self, tensordict: TensorDictBase | None, **kwargs: Any) -> TensorDictBase:
        if tensordict is None or "params" not in tensordict.keys():
            batch = () if tensordict is None else tensordict.batch_size
            tensordict = self.td_params.expand(batch).clone() if batch else self.td_params.clone()
        shape = tensordict.batch_size
        th = (torch.rand(shape, generator=self.rng) * 2 - 1) * self.DEFAULT_X
        thdot = (torch.rand(shape, generator=self.rng) * 2 - 1) * self.DEFAULT_Y
        return TensorDict(
            {"th": th.to(self.device) if self.device else th,
             "thdot": thdot.to(self.device) if self.device else thdot,
             "params": tensordict["params"]},
            batch_size=shape,
            device=self.device,
        )

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        th, thdot = tensordict["th"], tensordict["thdot"]
        p = tensordict["params"]
        g, m, length, dt = p["g"], p["m"], p["l"], p["dt"]
        u = tensordict["action"].squeeze(-1)
        u = torch.maximum(torch.minimum(u, p["max_torque"]), -p["max_torque"])
        cost = _angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * u**2
        new_thdot = thdot + (3 * g / (2 * length) * th.sin() + 3.0 / (m * length**2) * u) * dt
        new_thdot = torch.maximum(torch.minimum(new_thdot, p["max_speed"]), -p["max_speed"])
        new_th = _angle_normalize(th + new_thdot * dt)  # stays in the spec's [-pi, pi]
        done = torch.zeros((*tensordict.batch_size, 1), dtype=torch.bool, device=th.device)
        return TensorDict(
            {"th": new_th, "thdot": new_thdot, "params": p, "reward": (-cost).unsqueeze(-1),
             "done": done, "terminated": done.clone(), "truncated": done.clone()},
            batch_size=tensordict.batch_size,
            device=self.device,
        )
