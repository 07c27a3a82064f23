"""The transform contract: one transform, checked on CountingEnv in every setting it must
work in.

Inherit :class:`TransformContractTests` in a pytest class and define ``make_transform`` (a
fresh transform each call). The suite checks, with ``check_env_specs`` (the env's specs match
what its reset and step produce, so spec in = spec out through every ``transform_*_spec``):

- an unbatched and a batched env (``batch_size=(3,)``);
- episodes that end and restart (reset behaviour, partial resets of a batched env);
- the action path (``env.rand_step`` writes an action in the transformed action spec, the
  base env must accept what the inverse makes of it);
- the transform outside a SerialEnv, inside each SerialEnv sub-env, and inside ParallelEnv
  sub-envs;
- pickling/deepcopy (ParallelEnv ships transforms to workers) and ``repr``.

``base_kwargs`` are passed to CountingEnv (e.g. ``{"pixels": True}``); ``base_env`` may name
a subclass of it (an env with an extra attribute a transform reads).
"""

from __future__ import annotations

import copy
import pickle

from transform_test_envs import CountingEnv

from streamrl.envs import ParallelEnv, SerialEnv
from streamrl.envs.transforms import TransformedEnv
from streamrl.envs.utils import check_env_specs


class TransformContractTests:
    """Base class of per-transform contract tests (see the module docstring)."""

    base_kwargs: dict = {}
    base_env: type = CountingEnv
    steps: int = 7  # > max_count so that every env is reset inside the rollout

    def make_transform(self):
        raise NotImplementedError

    def _env(self, batch_size=()):
        kwargs = {"max_count": 3, **self.base_kwargs}
        return TransformedEnv(self.base_env(batch_size=batch_size, **kwargs), self.make_transform())

    def _check(self, env):
        try:
            check_env_specs(env, steps=self.steps)
            env.rand_step(env.reset())
        finally:
            env.close()

    def test_unbatched(self):
        self._check(self._env())

    def test_batched(self):
        self._check(self._env((3,)))

    def test_outside_serial_env(self):
        kwargs = {"max_count": 3, **self.base_kwargs}
        cls = self.base_env
        fns = [lambda m=m: cls(**{**kwargs, "max_count": m}) for m in (2, 3)]
        self._check(TransformedEnv(SerialEnv(2, fns), self.make_transform()))

    def test_inside_serial_env(self):
        self._check(SerialEnv(2, lambda: self._env()))

    def test_inside_parallel_env(self):
        make = self._env
        self._check(ParallelEnv(2, lambda: make(), mp_start_method="fork"))

    def test_copy_pickle_repr(self):
        t = self.make_transform()
        assert type(t).__name__ in repr(t)
        for other in (copy.deepcopy(t), pickle.loads(pickle.dumps(t))):
            assert type(other) is type(t)
            assert other.in_keys == t.in_keys and other.out_keys == t.out_keys
            assert other.in_keys_inv == t.in_keys_inv
