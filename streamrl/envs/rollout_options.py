"""TorchRL's ``env.rollout`` options: what it accepts as a policy besides a ``td -> td``
callable, and how the stacked steps are returned.

- a callable whose required arguments are all observation keys (``def policy(observation)``)
  is wrapped into a :class:`~tensordict.nn.TensorDictModule` reading those keys and writing
  the env's action keys (``trust_policy=True`` skips the wrapping);
- ``actions=[...]``: pre-computed actions replayed in order (open-loop);
- ``auto_cast_to_device=True``: the policy's input is moved to the device of its parameters
  and its output back;
- ``return_contiguous=False`` / ``out=`` / ``storing_device=``: :func:`finish_rollout`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import torch
from tensordict import LazyStackedTensorDict, TensorDictBase, is_tensor_collection
from tensordict.nn import TensorDictModule, TensorDictModuleBase

_TD_NAMES = ({"tensordict"}, {"td"})


def _signature(policy: Callable) -> inspect.Signature | None:
    try:
        return inspect.signature(getattr(policy, "forward", policy))
    except (TypeError, ValueError):  # builtins and C callables
        return None


def make_compatible_policy(policy: Any, env: Any, trust_policy: bool = False) -> Any:
    """``policy`` as a ``td -> td`` callable for ``env`` (see the module docstring).

    A callable taking a TensorDict (a TensorDict module, one parameter named ``tensordict``
    or ``td`` or annotated as a TensorDict, or arguments that are not all observation keys)
    is returned as it is.

    >>> from streamrl.envs import GymEnv
    >>> env = GymEnv("Pendulum-v1")
    >>> policy = make_compatible_policy(lambda observation: observation[..., :1].clamp(-2, 2), env)
    >>> policy.in_keys, policy.out_keys
    (['observation'], ['action'])
    >>> env.close()
    """
    if policy is None or trust_policy or isinstance(policy, TensorDictModuleBase):
        return policy
    if not callable(policy):
        raise TypeError(f"policy must be callable, found {type(policy).__name__}")
    sig = _signature(policy)
    if sig is None:
        return policy
    names = set(sig.parameters)
    if names in _TD_NAMES:
        return policy
    params = list(sig.parameters.values())
    if len(params) == 1 and is_tensor_collection(params[0].annotation):
        return policy
    required = {
        p.name for p in params
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }
    obs_keys = {k for k in env.observation_spec.keys() if isinstance(k, str)}
    if not required or not required <= obs_keys:
        return policy  # it takes the TensorDict itself
    in_keys = [p.name for p in params if p.name in obs_keys]
    return TensorDictModule(policy, in_keys=in_keys, out_keys=list(env.action_keys))


class ReplayActions:
    """A policy writing pre-computed actions, one per call, under ``action_key``.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> replay = ReplayActions([torch.zeros(1), torch.ones(1)], "action")
    >>> [replay(TensorDict())["action"].item() for _ in range(2)]
    [0.0, 1.0]
    """

    def __init__(self, actions: Iterable[Any], action_key: Any) -> None:
        self.actions = [torch.as_tensor(a) for a in actions]
        if not self.actions:
            raise ValueError("actions is empty: expected at least one action to replay")
        self.action_key = action_key
        self._next = 0

    def __len__(self) -> int:
        return len(self.actions)

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        if self._next >= len(self.actions):
            raise IndexError(f"all {len(self.actions)} actions were replayed")
        action = self.actions[self._next]
        self._next += 1
        return tensordict.set(self.action_key, action)


def policy_device(policy: Any) -> torch.device | None:
    """The device of the policy's first parameter (or buffer), None if it has none."""
    for get in ("parameters", "buffers"):
        for tensor in getattr(policy, get, lambda: ())():
            return tensor.device
    return None


class CastToPolicyDevice:
    """Calls ``policy`` on its own device: the input is moved there, the output back."""

    def __init__(self, policy: Callable, device: torch.device) -> None:
        self.policy, self.device = policy, device

    def __call__(self, tensordict: TensorDictBase) -> TensorDictBase:
        home = tensordict.device
        out = self.policy(tensordict.to(self.device))
        return out if home is None or out.device == home else out.to(home)


def finish_rollout(
    result: TensorDictBase,
    batch_dims: int,
    return_contiguous: bool = True,
    out: TensorDictBase | None = None,
    storing_device: Any = None,
) -> TensorDictBase:
    """The rollout's stacked steps as asked: on ``storing_device``, written into ``out``
    (which must have their shape), or as a lazy stack along the time dim
    (``return_contiguous=False``)."""
    if storing_device is not None:
        result = result.to(storing_device)
    if out is not None:
        if not isinstance(out, TensorDictBase):
            raise TypeError(f"out must be a TensorDict, found {type(out).__name__}")
        if out.batch_size != result.batch_size:
            raise ValueError(
                f"out has batch size {tuple(out.batch_size)}, the rollout "
                f"{tuple(result.batch_size)}: expected equal"
            )
        out.update(result)
        return out
    if not return_contiguous:
        return LazyStackedTensorDict(*result.unbind(batch_dims), stack_dim=batch_dims)
    return result
