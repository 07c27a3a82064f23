"""gSDENoise: the exploration noise of generalized state-dependent exploration (gSDE),
drawn at each reset and kept for the whole episode.

>>> from streamrl.envs.libs.gym import GymEnv
>>> from streamrl.envs.transforms import TransformedEnv, gSDENoise
>>> env = TransformedEnv(GymEnv("Pendulum-v1"), gSDENoise(state_dim=3, action_dim=1))
>>> td = env.reset()
>>> td["_eps_gSDE"].shape
torch.Size([1, 3])
>>> bool((env.rand_step(td)["next", "_eps_gSDE"] == td["_eps_gSDE"]).all())
True
>>> env.close()
"""

from __future__ import annotations

from typing import Any

from streamrl.data.specs import Unbounded
from streamrl.envs.transforms.primer import TensorDictPrimer

__all__ = ["gSDENoise"]

EPS_KEY = "_eps_gSDE"


def _dim(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int or None, found {value!r}")
    return value


class gSDENoise(TensorDictPrimer):
    """A :class:`TensorDictPrimer` of the ``"_eps_gSDE"`` entry that a gSDE policy reads.

    With ``state_dim`` and ``action_dim``, each reset draws standard normal noise of shape
    ``(*shape, action_dim, state_dim)`` (the exploration matrix a gSDE module multiplies
    with its state features) and each step carries it over, so the exploration of an
    episode is a deterministic function of the state. Without them, the entry is a zero
    placeholder of shape ``(*shape, 1)`` for a module that draws its own noise when it
    sees one.

    Args:
        state_dim: the size of the state features (None: placeholder).
        action_dim: the size of the action (None: placeholder).
        shape: leading dims of the noise (default none; the env's batch dims are added).
        **kwargs: other :class:`TensorDictPrimer` arguments (``reset_key``,
            ``expand_specs``...); the primers and ``random`` are set by this transform.
    """

    def __init__(
        self,
        state_dim: int | None = None,
        action_dim: int | None = None,
        shape: Any = None,
        **kwargs: Any,
    ) -> None:
        state_dim = _dim(state_dim, "state_dim")
        action_dim = _dim(action_dim, "action_dim")
        taken = sorted({"primers", "random", "default_value"} & set(kwargs))
        if taken:
            raise TypeError(f"gSDENoise sets its primer itself; found {taken}")
        try:
            lead = () if shape is None else tuple(int(d) for d in shape)
        except TypeError:
            raise TypeError(f"shape must be a sequence of ints, found {shape!r}") from None
        noise = state_dim is not None and action_dim is not None
        tail = (action_dim, state_dim) if noise else (1,)
        super().__init__(
            primers={EPS_KEY: Unbounded(shape=(*lead, *tail))}, random=noise or None, **kwargs
        )
        self.state_dim = state_dim
        self.action_dim = action_dim
        self.shape = lead

    def __repr__(self) -> str:
        return (
            f"gSDENoise(state_dim={self.state_dim}, action_dim={self.action_dim}, "
            f"shape={self.shape})"
        )
