"""DecisionTransformerInferenceWrapper: run a Decision Transformer policy on a context of
past steps and keep the action it predicts for the last one."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase
from tensordict.utils import NestedKey, unravel_key

from streamrl.data.specs import Composite

__all__ = ["DecisionTransformerInferenceWrapper"]


class DecisionTransformerInferenceWrapper(TensorDictModuleBase):
    """Wrap a Decision Transformer policy for acting.

    The input holds sequences ``observation`` ``[*B, T, S]``, ``action`` ``[*B, T, A]`` and
    ``return_to_go`` ``[*B, T, 1]``. Only the last ``inference_context`` steps are shown to
    the policy (earlier ones are zeroed). The actions are shifted one step earlier (slot
    ``t`` gets the input's ``action[t+1]``) and the last slot is zero: the last step's action
    is the one to predict. The output is a copy of the input where the ``out_action`` entry is the
    action predicted at the last step (``[*B, A]``; when ``T`` is a batch dim of the
    tensordict, that dim is dropped), ``return_to_go`` is its last value ``[*B, 1]``, and
    ``observation`` the unmasked input. The policy's other outputs (e.g. distribution
    parameters) stay as the policy wrote them.

    Keys are set with :meth:`set_tensor_keys` (``observation``, ``action``,
    ``return_to_go``, ``out_action``).

    Args:
        policy: a TensorDict module reading the three sequences and writing the action.

    Keyword Args:
        inference_context: how many of the last steps the policy sees (default 5).
        spec: the spec of the output (a leaf spec is the action's).
        device: where the spec is put.

    >>> from tensordict import TensorDict
    >>> from tensordict.nn import TensorDictModule
    >>> from streamrl.modules import DTActor
    >>> actor = TensorDictModule(DTActor(4, 2, {"n_embd": 16, "n_inner": 32}),
    ...     in_keys=["observation", "action", "return_to_go"], out_keys=["action"])
    >>> wrapper = DecisionTransformerInferenceWrapper(actor, inference_context=3)
    >>> td = TensorDict({"observation": torch.randn(1, 8, 4), "action": torch.randn(1, 8, 2),
    ...                  "return_to_go": torch.randn(1, 8, 1)}, [1])
    >>> out = wrapper(td)
    >>> out["action"].shape, out["return_to_go"].shape, out["observation"].shape
    (torch.Size([1, 2]), torch.Size([1, 1]), torch.Size([1, 8, 4]))
    """

    def __init__(
        self,
        policy: TensorDictModuleBase,
        *,
        inference_context: int = 5,
        spec: Any = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(policy, TensorDictModuleBase):
            raise TypeError(
                "DecisionTransformerInferenceWrapper: expected policy a TensorDict module, "
                f"found {type(policy).__name__}"
            )
        if isinstance(inference_context, bool) or not isinstance(inference_context, int) or (
            inference_context < 1
        ):
            raise ValueError(
                "DecisionTransformerInferenceWrapper: expected inference_context a positive "
                f"int, found {inference_context!r}"
            )
        self.td_module = policy
        self.inference_context = inference_context
        self.observation_key: NestedKey = "observation"
        self.action_key: NestedKey = "action"
        self.out_action_key: NestedKey = "action"
        self.return_to_go_key: NestedKey = "return_to_go"
        if spec is not None and not isinstance(spec, Composite):
            spec = Composite({self.action_key: spec}, shape=spec.shape[:-1])
        if spec is None:
            spec = getattr(policy, "spec", None)
        if spec is not None and device is not None:
            spec = spec.to(device)
        self.spec = spec
        self._checked = False

    @property  # type: ignore[misc]
    def in_keys(self) -> list[NestedKey]:
        """The observation, action and return-to-go keys."""
        return [self.observation_key, self.action_key, self.return_to_go_key]

    @property  # type: ignore[misc]
    def out_keys(self) -> list[NestedKey]:
        """The policy's outputs and the three input keys."""
        keys = {*map(unravel_key, self.td_module.out_keys), *self.in_keys}
        return sorted(keys, key=str)

    def set_tensor_keys(self, **keys: NestedKey) -> None:
        """Rename ``observation``, ``action`` (the policy's input), ``return_to_go`` or
        ``out_action`` (the policy's output, one of its ``out_keys``)."""
        unknown = sorted(set(keys) - {"observation", "action", "return_to_go", "out_action"})
        if unknown:
            raise TypeError(
                f"DecisionTransformerInferenceWrapper: unknown keys {unknown}; expected "
                "observation, action, return_to_go or out_action"
            )
        out_action = unravel_key(keys.get("out_action", self.out_action_key))
        written = [unravel_key(k) for k in self.td_module.out_keys]
        if out_action not in written:
            raise ValueError(
                f"DecisionTransformerInferenceWrapper: expected out_action among the policy's "
                f"out_keys {written}, found {out_action!r}"
            )
        self.observation_key = unravel_key(keys.get("observation", self.observation_key))
        self.action_key = unravel_key(keys.get("action", self.action_key))
        self.return_to_go_key = unravel_key(keys.get("return_to_go", self.return_to_go_key))
        self.out_action_key = out_action
        self._checked = True

    def step(self, frames: int = 1) -> None:
        """Nothing to anneal (the exploration-module interface)."""

    def mask_context(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Zero the steps before the last ``inference_context`` ones and shift the actions
        (see the class docstring); writes into ``tensordict`` and returns it."""
        obs = self._get(tensordict, self.observation_key)
        action = self._get(tensordict, self.action_key)
        rtg = self._get(tensordict, self.return_to_go_key)
        if not obs.shape[:-1] == action.shape[:-1] == rtg.shape[:-1] or obs.ndim < 2:
            raise ValueError(
                "DecisionTransformerInferenceWrapper: expected observation, action and "
                "return_to_go of shapes [*B, T, F] with the same [*B, T], found "
                f"{tuple(obs.shape)}, {tuple(action.shape)} and {tuple(rtg.shape)}"
            )
        keep = torch.arange(obs.shape[-2], device=obs.device) >= obs.shape[-2] - self.inference_context
        keep = keep.unsqueeze(-1)
        shifted = torch.cat([action[..., 1:, :], torch.zeros_like(action[..., :1, :])], dim=-2)
        tensordict.set(self.observation_key, torch.where(keep, obs, torch.zeros_like(obs)))
        tensordict.set(self.action_key, torch.where(keep, shifted, torch.zeros_like(shifted)))
        tensordict.set(self.return_to_go_key, torch.where(keep, rtg, torch.zeros_like(rtg)))
        return tensordict

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """The policy's action for the last step of the context (see the class docstring)."""
        if not self._checked:
            self.set_tensor_keys()
        tensordict = tensordict.clone(False)
        obs = self._get(tensordict, self.observation_key)
        tensordict = self.td_module(self.mask_context(tensordict))
        action = self._get(tensordict, self.out_action_key)
        if tensordict.batch_dims == action.ndim - 1:
            # the time dim is a batch dim of the tensordict: the output has one step
            tensordict.batch_size = tensordict.batch_size[:-1]
        tensordict.set(self.out_action_key, action[..., -1, :])
        tensordict.set(self.return_to_go_key,
                       self._get(tensordict, self.return_to_go_key)[..., -1, :])
        tensordict.set(self.observation_key, obs)
        return tensordict

    @staticmethod
    def _get(tensordict: TensorDictBase, key: NestedKey) -> Any:
        value = tensordict.get(key, None)
        if value is None:
            raise KeyError(
                f"DecisionTransformerInferenceWrapper: key {key!r} not found; the data has "
                f"{sorted(map(str, tensordict.keys(True, True)))}"
            )
        return value
