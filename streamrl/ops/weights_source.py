"""WeightsSource and WeightsToken: a policy's weights as messages, for rollouts that share no
memory with the learner (Ray actors, other nodes)."""

from __future__ import annotations

import threading
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from streamrl.graph import Operator
from streamrl.ops.policy_weights import PolicyWeights, _published_params

__all__ = ["WeightsSource", "WeightsToken"]

_POLL_S = 0.1  # how often a waiting step returns, so the runner sees when its readers left


class WeightsSource(Operator):
    """A source emitting ``(version, params)`` on its latest-value output ``weights`` each time
    :meth:`publish` is called (from any thread): a copy of the policy's parameters and buffers
    as a TensorDict, and the count of publications. Given a
    :class:`~streamrl.ops.PolicyWeights` instead of a module, it follows it: each version
    published there is emitted within 0.1 s. Connect it with ``kind="latest"`` to the
    ``weights`` port of rollouts built with ``weights_port=True``: readers see only the newest
    version. It ends once every reader has gone, or after :meth:`stop` (the newest version
    is emitted first). A step waits up to 0.1 s for a publication: place it in a thread.

    >>> source = WeightsSource(nn.Linear(2, 1))
    >>> source.publish()
    1
    >>> version, params = source.step({})["weights"]
    >>> version, sorted(params.keys())
    (1, ['bias', 'weight'])
    >>> source.stop()
    >>> source.step({})
    Traceback (most recent call last):
    StopIteration
    """

    inputs = ()
    outputs = ("weights",)
    state_keys = ("version",)

    def __init__(self, policy: nn.Module | PolicyWeights, *, version: int = 0):
        self.follows = policy if isinstance(policy, PolicyWeights) else None
        if self.follows is not None:
            policy, version = self.follows.policy, self.follows.version
        if not isinstance(policy, nn.Module):
            raise TypeError(f"policy must be a torch.nn.Module or PolicyWeights, found "
                            f"{type(policy).__name__}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError(f"version must be an int >= 0, found {version!r}")
        self.policy = policy
        self.version = version
        self._keys = set(TensorDict.from_module(policy).keys(True, True))
        self._newest: tuple[int, TensorDictBase] | None = None  # not emitted yet
        self._current: tuple[int, TensorDictBase] | None = None  # the newest published
        self._stopped = False
        self._changed = threading.Condition()

    def publish(self, weights: nn.Module | TensorDictBase | None = None) -> int:
        """Snapshot ``weights`` (a module or a TensorDict of its parameters and buffers;
        default: the policy given at construction) as the next version; returns it."""
        params = _published_params(self.policy if weights is None else weights, self._keys)
        with torch.no_grad():
            snapshot = params.detach().clone().to("cpu")
        with self._changed:
            self.version += 1
            self._newest = self._current = (self.version, snapshot)
            self._changed.notify_all()
            return self.version

    def current(self) -> tuple[int, TensorDictBase | None]:
        """``(version, params)`` of the newest publication (``(version, None)`` before any)."""
        with self._changed:
            return self._current if self._current is not None else (self.version, None)

    def stop(self) -> None:
        """End the stream once the newest version has been emitted."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def step(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        if self.follows is not None and self.follows.version > self.version:
            version = self.follows.version  # (one published meanwhile goes at the next step)
            params = self.follows.snapshot()
            with self._changed:
                self.version = version
                self._current, self._newest = (version, params), None
            return {"weights": (version, params)}
        with self._changed:
            if self._newest is None and not self._stopped:
                self._changed.wait(_POLL_S)
            newest, self._newest = self._newest, None
            if newest is None and self._stopped:
                raise StopIteration
        return None if newest is None else {"weights": newest}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_changed"]  # a lock belongs to one process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._changed = threading.Condition()

    def __repr__(self) -> str:
        return f"WeightsSource(version={self.version})"


class WeightsToken(Operator):
    """Turns each token (e.g. a trigger's) into ``(version, params)``: a copy of the newest
    weights of ``weights`` (a :class:`WeightsSource` or a :class:`~streamrl.ops.PolicyWeights`)
    the first time a version goes out, ``(version, None)`` after that. Fed to a gated
    ``Rollout(weights_port=True)``, each batch is collected with exactly the weights that
    were current when it was asked for, however far away the rollout runs."""

    def __init__(self, weights: WeightsSource | PolicyWeights):
        if not isinstance(weights, (WeightsSource, PolicyWeights)):
            raise TypeError(f"weights must be a WeightsSource or PolicyWeights, found "
                            f"{type(weights).__name__}")
        self.weights = weights
        self.sent = -1

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        w = self.weights
        if isinstance(w, WeightsSource):
            version, params = w.current()
        else:
            version = w.version
            params = None
            if version != self.sent:  # a copy: the shared one changes in place
                params = w.snapshot()
        if version == self.sent:
            params = None
        self.sent = version
        return {"out": (version, params)}
