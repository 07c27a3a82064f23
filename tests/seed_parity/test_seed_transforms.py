"""The seed tutorial's "Transforms" and "Vectorized Environments" sections, with ``torchrl``
replaced by ``streamrl``: the printed keys, shapes, dtypes, batch sizes and reprs.

Pendulum renders 500x500 frames, so these runs are kept short.
"""

from __future__ import annotations

import torch

from streamrl.envs import (
    Compose,
    NoopResetEnv,
    ObservationNorm,
    ParallelEnv,
    StepCounter,
    ToTensorImage,
    TransformedEnv,
)
from streamrl.envs.libs.gym import GymEnv

SEED_ENV_REPR = """TransformedEnv(
    env=GymEnv(env=Pendulum-v1, batch_size=torch.Size([]), device=None),
    transform=Compose(
            NoopResetEnv(noops=3, random=True),
            ToTensorImage(keys=['pixels']),
            ObservationNorm(loc=2.0000, scale=1.0000, keys=['pixels'])))"""

SEED_PARENT_REPR = """TransformedEnv(
    env=GymEnv(env=Pendulum-v1, batch_size=torch.Size([]), device=None),
    transform=Compose(
            NoopResetEnv(noops=3, random=True),
            ToTensorImage(keys=['pixels'])))"""

# The seed prints this spec as ``BoundedTensorSpec(``; streamrl's name for that class is
# ``Bounded`` (``BoundedTensorSpec`` is an alias), so only the body is compared.
SEED_ACTION_SPEC_BODY = """    shape=torch.Size([4, 1]),
    space=ContinuousBox(
        low=Tensor(shape=torch.Size([4, 1]), device=cpu, dtype=torch.float32, contiguous=True),
        high=Tensor(shape=torch.Size([4, 1]), device=cpu, dtype=torch.float32, contiguous=True)),
    device=cpu,
    dtype=torch.float32,
    domain=continuous)"""


def _layout(td):
    return {key: (tuple(td.get(key).shape), td.get(key).dtype) for key in td.keys(True, True)}


def test_seed_transforms_section():
    base_env = GymEnv("Pendulum-v1", frame_skip=3, from_pixels=True, pixels_only=False)
    env = TransformedEnv(base_env, Compose(NoopResetEnv(3), ToTensorImage()))
    shown = env.append_transform(ObservationNorm(in_keys=["pixels"], loc=2, scale=1))
    assert repr(shown) == SEED_ENV_REPR
    td = env.reset()
    assert td.batch_size == torch.Size([])
    assert _layout(td) == {
        "done": ((1,), torch.bool),
        "observation": ((3,), torch.float32),
        "pixels": ((3, 500, 500), torch.float32),
        "terminated": ((1,), torch.bool),
        "truncated": ((1,), torch.bool),
    }
    # ObservationNorm(loc=2, scale=1) shifts pixels in [0, 1] to [2, 3]
    assert float(td["pixels"].min()) >= 2.0 and float(td["pixels"].max()) <= 3.0
    assert f"env:  {env}" == f"env:  {SEED_ENV_REPR}"
    assert repr(env.transform[2].parent) == SEED_PARENT_REPR
    assert env.observation_spec["pixels"].is_in(td["pixels"])
    env.close()
    assert base_env.is_closed


def test_seed_vectorized_environments_section():
    base_env = ParallelEnv(
        4,
        lambda: GymEnv("Pendulum-v1", frame_skip=3, from_pixels=True, pixels_only=False),
        mp_start_method="fork",
    )
    env = TransformedEnv(base_env, Compose(StepCounter(), ToTensorImage()))
    env.append_transform(ObservationNorm(in_keys=["pixels"], loc=2, scale=1))
    try:
        td = env.reset()
        assert td.batch_size == torch.Size([4])
        assert _layout(td) == {
            "done": ((4, 1), torch.bool),
            "observation": ((4, 3), torch.float32),
            "pixels": ((4, 3, 500, 500), torch.float32),
            "step_count": ((4, 1), torch.int64),
            "terminated": ((4, 1), torch.bool),
            "truncated": ((4, 1), torch.bool),
        }
        assert td["step_count"].eq(0).all()
        spec_repr = repr(env.action_spec)
        assert spec_repr.split("\n", 1)[1] == SEED_ACTION_SPEC_BODY
        # the transforms apply to the whole batch of envs: one step counts in every sub-env
        td = env.rand_step(td)
        assert td["next", "step_count"].squeeze(-1).tolist() == [1, 1, 1, 1]
        assert td["next", "pixels"].shape == (4, 3, 500, 500)
    finally:
        env.close()
    assert base_env.is_closed
