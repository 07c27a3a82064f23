"""ActionMask: keep a discrete action spec's mask in step with the legal-action mask an env
reports, so random actions (``env.rand_action``, exploration) are legal ones.

>>> import torch
>>> from streamrl.envs.transforms import ActionMask
>>> ActionMask()
ActionMask(action_key='action', mask_key='action_mask')
"""

from __future__ import annotations

from typing import Any

from tensordict import TensorDictBase
from tensordict.utils import NestedKey

from streamrl.data.specs.discrete import samplable_mask
from streamrl.envs.transforms.transform import Transform, as_keys

__all__ = ["ActionMask"]


class ActionMask(Transform):
    """After each reset and step, set the mask of the (Categorical or OneHot) action spec
    from the ``mask_key`` entry the env wrote (a bool tensor, True = legal, shaped
    ``(*batch, n)``; a row allowing nothing, e.g. an agent that does not act this step,
    leaves that row unrestricted: :func:`~streamrl.data.specs.discrete.samplable_mask`).

    A batched env of masked envs (``SerialEnv``/``ParallelEnv`` of PettingZoo games) stacks
    its sub-envs' specs once: put one ``ActionMask`` per masked action on top of it (as in
    TorchRL) so that its random actions follow the masks.

    Args:
        action_key: the action entry (default ``"action"``).
        mask_key: the mask entry, an observation or state of the env (default
            ``"action_mask"``).

    It only works inside an env (there is no spec to mask outside one); data passes
    through unchanged.

    >>> import torch
    >>> from streamrl.data.specs import Categorical, Composite, Unbounded
    >>> from streamrl.envs.common import EnvBase
    >>> from streamrl.envs.transforms import TransformedEnv
    >>> from tensordict import TensorDict
    >>> class Masked(EnvBase):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.action_spec = Categorical(4)
    ...         self.full_observation_spec = Composite(
    ...             action_mask=Categorical(2, shape=(4,), dtype=torch.bool))
    ...     def _reset(self, td=None):
    ...         return TensorDict({"action_mask": torch.tensor([False, True, False, False])})
    ...     def _step(self, td):
    ...         return TensorDict({"action_mask": torch.tensor([False, True, False, False]),
    ...             "reward": torch.zeros(1), "done": torch.zeros(1, dtype=torch.bool),
    ...             "terminated": torch.zeros(1, dtype=torch.bool),
    ...             "truncated": torch.zeros(1, dtype=torch.bool)})
    ...     def _set_seed(self, seed):
    ...         pass
    >>> env = TransformedEnv(Masked(), ActionMask())
    >>> env.rollout(5)["action"].tolist()
    [1, 1, 1, 1, 1]
    """

    _live_action_spec = True

    def __init__(self, action_key: NestedKey = "action", mask_key: NestedKey = "action_mask"):
        super().__init__()
        (self.action_key,) = _one(action_key, "action_key")
        (self.mask_key,) = _one(mask_key, "mask_key")
        object.__setattr__(self, "_spec", None)

    def transform_action_spec(self, spec: Any) -> Any:
        """Unchanged, but remembered: its mask follows the env's mask entry."""
        if self.action_key not in spec.keys(True, True):
            raise KeyError(
                f"ActionMask: no action {self.action_key!r}; the env's actions are "
                f"{sorted(map(str, spec.keys(True, True)))}"
            )
        leaf = spec[self.action_key]
        if not hasattr(leaf, "update_mask"):
            raise TypeError(
                f"ActionMask needs a discrete (Categorical or OneHot) action spec, found "
                f"{type(leaf).__name__}"
            )
        object.__setattr__(self, "_spec", leaf)
        return spec

    def transform_state_spec(self, spec: Any) -> Any:
        """Unchanged."""
        return spec

    def transform_observation_spec(self, spec: Any) -> Any:
        """Unchanged."""
        return spec

    def transform_reward_spec(self, spec: Any) -> Any:
        """Unchanged."""
        return spec

    def _update(self, td: TensorDictBase) -> TensorDictBase:
        env = self.container
        while env is not None and not hasattr(env, "full_action_spec"):
            env = env.container
        if env is None:
            raise ValueError("ActionMask updates an env's action spec: put it in a TransformedEnv")
        env.full_action_spec  # noqa: B018 - builds the specs (and finds the action spec)
        self._spec.update_mask(samplable_mask(self._get(td, self.mask_key)))
        return td

    def _call(self, td: TensorDictBase) -> TensorDictBase:
        return td

    def _reset(self, td: TensorDictBase | None, td_reset: TensorDictBase) -> TensorDictBase:
        return self._update(td_reset)

    def _step(self, td: TensorDictBase, next_td: TensorDictBase) -> TensorDictBase:
        return self._update(next_td)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_spec"] = None
        return state

    def __repr__(self) -> str:
        return f"ActionMask(action_key={self.action_key!r}, mask_key={self.mask_key!r})"


def _one(key: Any, name: str) -> list:
    keys = as_keys(key, name)
    if len(keys) != 1:
        raise ValueError(f"{name} must be one key, found {key!r}")
    return keys
