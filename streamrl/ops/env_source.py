"""EnvSource: an env in a feedback loop with a policy stage."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tensordict import TensorDictBase

from streamrl.envs.common import EnvBase
from streamrl.graph import Operator
from streamrl.ops.rollout import make_env

__all__ = ["EnvSource"]


class EnvSource(Operator):
    """An env (usually a batch of envs) driven by actions that arrive on its ``action`` port.

    It emits the first observation when it opens (so it primes a feedback cycle with a policy
    stage), then for every action: steps, emits the transition on ``out`` and the next root
    (done sub-envs reset) on ``obs``. The policy stage that closes the loop is connected with
    ``feedback=True``::

        env = g.add(EnvSource(lambda: SerialEnv(8, make_cartpole), total_frames=10_000))
        pol = g.add(PolicyStage(actor))
        g.connect(env["obs"], pol).connect(pol, env["action"], feedback=True)
        g.connect(env["out"], g.add(TrajectoryBatcher(1024)))

    Args:
        create_env: an env or a zero-argument callable building one (in :meth:`open`).
        total_frames: end the stream after this many frames (``None``: never).
        seed: seeds the env.
        project_actions: project incoming actions into the env's action spec (clamp into
            bounds) before stepping, as :class:`~streamrl.ops.Rollout` does.
    """

    inputs = ("action",)
    outputs = ("obs", "out")
    primes = 1
    state_keys = ("frames",)

    def __init__(
        self,
        create_env: EnvBase | Callable[[], EnvBase],
        *,
        total_frames: int | None = None,
        seed: int | None = None,
        project_actions: bool = True,
    ):
        if total_frames is not None and (not isinstance(total_frames, int) or total_frames < 1):
            raise ValueError(f"total_frames must be a positive int or None, got {total_frames!r}")
        self.create_env = create_env
        self.total_frames = total_frames
        self.seed = seed
        self.project_actions = project_actions
        self.frames = 0
        self.env: EnvBase | None = None
        self._last: TensorDictBase | None = None

    def open(self) -> dict[str, Any]:
        self.env = make_env(self.create_env)
        if self.seed is not None:
            self.env.set_seed(self.seed)
        return {"obs": self.env.reset()}

    def step(self, inputs: dict[str, Any]) -> dict[str, Any]:
        env = self.env
        if env is None:
            raise RuntimeError("EnvSource.step() called before open()")
        if self._last is not None:  # the budget was spent: this action is not used
            raise StopIteration
        td = inputs["action"]
        if not isinstance(td, TensorDictBase):
            raise TypeError(
                f"EnvSource expects a TensorDict with an action on its 'action' port, found "
                f"{type(td).__name__}"
            )
        if self.project_actions:
            env.full_action_spec.project(td)
        stepped = env.step(td)
        self.frames += max(1, env.batch_size.numel())
        if self.total_frames is not None and self.frames >= self.total_frames:
            self._last = stepped
            raise StopIteration
        root = env.maybe_reset(env.next_root(stepped))
        return {"out": stepped, "obs": root}

    def finish(self) -> dict[str, Any] | None:
        last, self._last = self._last, None
        return None if last is None else {"out": last}

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


