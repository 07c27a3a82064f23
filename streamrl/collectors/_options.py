"""The collectors' keyword arguments (TorchRL 0.14's names and meanings), checked in one place
before any env is built."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch

from streamrl._warnings import StreamRLWarning
from streamrl.collectors._accelerate import PolicyAccelerator, as_kwargs
from streamrl.envs.utils import ExplorationType

# arguments only the multi-process collectors take
MULTI_ONLY = ("update_at_each_batch", "mp_start_method")
TRAJ_FORMATS = ("padded", "cat")


def as_device(device: Any, what: str = "device") -> torch.device | None:
    """One device (a list of equal devices counts as one), or None."""
    if device is None:
        return None
    if isinstance(device, (list, tuple)):
        devices = {torch.device(d) for d in device}
        if len(devices) != 1:
            raise ValueError(
                f"{what}: collected batches are stacked on one device; found several: "
                f"{sorted(map(str, devices))}"
            )
        return devices.pop()
    try:
        return torch.device(device)
    except (TypeError, RuntimeError) as exc:
        raise ValueError(f"{what} must be a device, found {device!r}") from exc


@dataclass
class CollectorOptions:
    """Every keyword argument a collector accepts, validated by :meth:`parse`."""

    frames_per_batch: int
    total_frames: int = -1
    device: Any = None
    storing_device: Any = None
    env_device: Any = None
    policy_device: Any = None
    create_env_kwargs: Any = None
    max_frames_per_traj: int | None = None
    init_random_frames: int | None = None
    reset_at_each_iter: bool = False
    reset_when_done: bool = True
    postproc: Callable[[Any], Any] | None = None
    split_trajs: bool | None = None
    exploration_type: ExplorationType = ExplorationType.RANDOM
    replay_buffer: Any = None
    extend_buffer: bool = True
    trajs_per_batch: int | None = None
    traj_format: str | None = None
    update_at_each_batch: bool = False
    mp_start_method: str | None = None
    compile_policy: Any = False
    cudagraph_policy: Any = False
    policy_factory: Callable[[], Any] | None = None
    trust_policy: bool = False

    @classmethod
    def parse(cls, owner: str, multi: bool, kwargs: dict[str, Any]) -> CollectorOptions:
        """Check ``kwargs`` (names, then values) for the collector class ``owner``."""
        accepted = [f.name for f in fields(cls) if multi or f.name not in MULTI_ONLY]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise TypeError(
                f"{owner} got unsupported argument(s) {unknown}; it accepts "
                f"create_env_fn, policy and {sorted(accepted)}"
            )
        if "frames_per_batch" not in kwargs:
            raise TypeError(f"{owner} needs the keyword argument frames_per_batch")
        opts = cls(**kwargs)
        opts.validate()
        return opts

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check every value (raises ValueError/TypeError naming the argument)."""
        fpb = self.frames_per_batch
        if isinstance(fpb, bool) or not isinstance(fpb, int) or fpb < 1:
            raise ValueError(f"frames_per_batch must be a positive int, got {fpb!r}")
        tf = self.total_frames
        if tf is None:
            self.total_frames = tf = -1
        if isinstance(tf, bool) or not isinstance(tf, int) or (tf < 1 and tf != -1):
            raise ValueError(f"total_frames must be a positive int or -1, got {tf!r}")
        mf = self.max_frames_per_traj
        if mf is not None and (isinstance(mf, bool) or not isinstance(mf, int)):
            raise ValueError(f"max_frames_per_traj must be an int or None, got {mf!r}")
        if mf is not None and mf < 1:  # TorchRL: negative values are ignored
            if mf == 0:
                raise ValueError("max_frames_per_traj must be positive (or negative/None: no limit), got 0")
            self.max_frames_per_traj = None
        self._check_random_frames()
        for flag in ("reset_at_each_iter", "reset_when_done", "extend_buffer",
                     "update_at_each_batch", "trust_policy"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be a bool, found {getattr(self, flag)!r}")
        if not self.reset_when_done:
            raise ValueError(
                "reset_when_done=False is not supported: streamrl envs reset their done "
                "sub-envs as they step (EnvBase.step_into)"
            )
        if self.split_trajs is None:
            self.split_trajs = False
        if not isinstance(self.split_trajs, bool):
            raise TypeError(f"split_trajs must be a bool or None, found {self.split_trajs!r}")
        if self.postproc is not None and not callable(self.postproc):
            raise TypeError(f"postproc must be callable, found {type(self.postproc).__name__}")
        if not isinstance(self.exploration_type, ExplorationType):
            raise TypeError(
                f"exploration_type must be an ExplorationType, found {self.exploration_type!r}"
            )
        self._check_buffer()
        self._check_trajs()
        self.device = as_device(self.device, "device")
        self.storing_device = as_device(self.storing_device, "storing_device")
        for name in ("env_device", "policy_device"):  # one device, or one per worker
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                setattr(self, name, [as_device(v, name) for v in value])
            else:
                setattr(self, name, as_device(value, name))
        self.compile_policy = as_kwargs(self.compile_policy, "compile_policy")
        self.cudagraph_policy = as_kwargs(self.cudagraph_policy, "cudagraph_policy")
        if self.policy_factory is not None and not callable(self.policy_factory):
            raise TypeError(
                f"policy_factory must be a callable returning the policy, found "
                f"{type(self.policy_factory).__name__}"
            )
        ckw = self.create_env_kwargs
        if ckw is not None and not isinstance(ckw, (dict, list, tuple)):
            raise TypeError(f"create_env_kwargs must be a dict (or one per worker), found {ckw!r}")

    def _check_random_frames(self) -> None:
        irf = self.init_random_frames
        if irf is None or irf == -1:  # -1: TorchRL's documented example, no random frames
            self.init_random_frames = 0
            return
        if isinstance(irf, bool) or not isinstance(irf, int) or irf < 0:
            raise ValueError(f"init_random_frames must be an int >= 0 (or None), got {irf!r}")
        fpb = self.frames_per_batch
        if irf % fpb:
            rounded = math.ceil(irf / fpb) * fpb
            warnings.warn(
                f"init_random_frames ({irf}) is not a multiple of frames_per_batch ({fpb}): "
                f"the first {rounded} frames are random",
                StreamRLWarning,
                stacklevel=5,
            )

    def _check_buffer(self) -> None:
        if self.replay_buffer is not None:
            if not hasattr(self.replay_buffer, "extend"):
                raise TypeError(
                    f"replay_buffer must have extend(), found {type(self.replay_buffer).__name__}"
                )
            if not self.extend_buffer:
                raise ValueError(
                    "extend_buffer=False (frame-by-frame writes, deprecated in TorchRL) is not "
                    "supported: the buffer is extended with whole batches"
                )

    def _check_trajs(self) -> None:
        n = self.trajs_per_batch
        if n is None:
            if self.traj_format is not None:
                raise ValueError(
                    f"traj_format={self.traj_format!r} needs trajs_per_batch (it sets the layout "
                    "of trajectory batches)"
                )
            return
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"trajs_per_batch must be a positive int or None, got {n!r}")
        if self.split_trajs:
            raise ValueError(
                "split_trajs=True splits fixed-frame batches; trajs_per_batch already yields "
                "whole trajectories: pass one of them"
            )
        if self.traj_format is None:
            self.traj_format = "padded"
        if self.traj_format not in TRAJ_FORMATS:
            raise ValueError(f"traj_format must be one of {TRAJ_FORMATS}, got {self.traj_format!r}")

    # ------------------------------------------------------------------ derived
    def devices(self) -> tuple[torch.device | None, Any, Any]:
        """``(storing, env, policy)`` devices, ``device`` filling the ones not given (env and
        policy devices may be one per worker)."""
        storing = self.storing_device if self.storing_device is not None else self.device
        env = self.env_device if self.env_device is not None else self.device
        policy = self.policy_device if self.policy_device is not None else self.device
        return storing, env, policy

    def policy_wrapper(self) -> PolicyAccelerator | None:
        """What wraps the policy where the rollout runs (None: the policy as it is)."""
        if self.compile_policy is None and self.cudagraph_policy is None:
            return None
        return PolicyAccelerator(self.compile_policy, self.cudagraph_policy)

    def random_batches(self) -> int:
        """How many leading batches take random actions (init_random_frames rounded up)."""
        return math.ceil((self.init_random_frames or 0) / self.frames_per_batch)

    def env_kwargs(self, num_workers: int) -> list[dict[str, Any]]:
        """One kwargs dict per worker."""
        ckw = self.create_env_kwargs
        if ckw is None:
            return [{} for _ in range(num_workers)]
        if isinstance(ckw, dict):
            return [dict(ckw) for _ in range(num_workers)]
        if len(ckw) != num_workers or not all(isinstance(k, dict) for k in ckw):
            raise ValueError(
                f"create_env_kwargs must be a dict or {num_workers} dicts (one per env "
                f"constructor), found {ckw!r}"
            )
        return [dict(k) for k in ckw]


def per_worker(value: Any, num_workers: int, what: str) -> list[torch.device | None]:
    """A device per worker from one device or a sequence of them."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_workers:
            raise ValueError(f"{what}: expected one device per worker ({num_workers}), found {value!r}")
        return [as_device(v, what) for v in value]
    return [as_device(value, what)] * num_workers
