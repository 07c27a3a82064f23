"""CatFrames: env path (history, padding, partial resets), data path (trajectories), specs."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.envs.transforms import CatFrames, Compose, ObservationNorm, TransformedEnv
from streamrl.envs.utils import check_env_specs


def _first(x):
    """The counter each stacked frame of an ``observation`` entry holds (dim -1 has 3 each)."""
    return x[..., ::3]


def test_env_stacks_last_frames_with_same_padding(counting_env):
    env = TransformedEnv(
        counting_env(max_count=100), CatFrames(N=3, dim=-1, in_keys=["observation"])
    )
    td = env.reset()
    assert td["observation"].shape == (9,)
    assert _first(td["observation"]).tolist() == [0, 0, 0]
    roll = env.rollout(4)
    assert _first(roll["next", "observation"]).tolist() == [
        [0, 0, 1],
        [0, 1, 2],
        [1, 2, 3],
        [2, 3, 4],
    ]
    # the root of each step is the previous step's stack
    assert _first(roll["observation"][1]).tolist() == [0, 0, 1]


def test_constant_padding(counting_env):
    env = TransformedEnv(
        counting_env(max_count=100),
        CatFrames(N=3, dim=-1, in_keys=["observation"], padding="constant", padding_value=-1.0),
    )
    td = env.reset()
    assert _first(td["observation"]).tolist() == [-1, -1, 0]
    td = env.rand_step(td)
    assert _first(td["next", "observation"]).tolist() == [-1, 0, 1]


def test_history_restarts_after_done(counting_env):
    env = TransformedEnv(counting_env(max_count=2), CatFrames(N=2, dim=-1, in_keys=["observation"]))
    roll = env.rollout(4, break_when_any_done=False)
    assert _first(roll["next", "observation"]).tolist() == [[0, 1], [1, 2], [0, 1], [1, 2]]


def test_batched_partial_reset_keeps_other_histories(counting_env):
    env = TransformedEnv(
        counting_env(batch_size=(2,), max_count=100),
        CatFrames(N=2, dim=-1, in_keys=["observation"]),
    )
    td = env.reset()
    for _ in range(3):
        td = env.rand_step(td)["next"].clone()
    td["_reset"] = torch.tensor([[True], [False]])
    out = env.reset(td)
    assert _first(out["observation"]).tolist() == [[0, 0], [2, 3]]
    out = env.rand_step(out)["next"]
    assert _first(out["observation"]).tolist() == [[0, 1], [3, 4]]


def test_later_transform_does_not_corrupt_history(counting_env):
    # ObservationNorm after CatFrames rewrites the stacked entry; the history stays raw
    env = TransformedEnv(
        counting_env(max_count=100),
        Compose(
            CatFrames(N=2, dim=-1, in_keys=["observation"]),
            ObservationNorm(loc=0.0, scale=10.0, in_keys=["observation"]),
        ),
    )
    roll = env.rollout(3)
    assert _first(roll["next", "observation"]).tolist() == [[0, 10], [10, 20], [20, 30]]


def test_image_stacking_and_spec(counting_env):
    from streamrl.envs.transforms import ToTensorImage

    env = TransformedEnv(
        counting_env(batch_size=(2,), pixels=True, hw=(4, 4)),
        Compose(ToTensorImage(), CatFrames(N=4, dim=-3)),
    )
    spec = env.observation_spec["pixels"]
    assert spec.shape == (2, 12, 4, 4)
    roll = env.rollout(3)
    assert roll["next", "pixels"].shape == (2, 3, 12, 4, 4)
    # red channel of the 4 stacked frames after step 3: counters 0, 1, 2, 3
    red = roll["next", "pixels"][0, 2, ::3, 0, 0] * 255
    torch.testing.assert_close(red, torch.tensor([0.0, 1.0, 2.0, 3.0]))
    check_env_specs(env)
    assert spec.rand().shape == spec.shape


def test_data_path_respects_episode_boundaries():
    obs = torch.arange(6.0).reshape(6, 1)
    done = torch.tensor([False, False, True, False, False, False]).reshape(6, 1)
    td = TensorDict({"obs": obs, "next": {"done": done}}, batch_size=[6])
    out = CatFrames(N=3, dim=-1, in_keys=["obs"], out_keys=["stacked"])(td)["stacked"]
    assert out.tolist() == [
        [0, 0, 0],
        [0, 0, 1],
        [0, 1, 2],
        [3, 3, 3],  # a new episode starts after the done step
        [3, 3, 4],
        [3, 4, 5],
    ]
    const = CatFrames(N=2, dim=-1, in_keys=["obs"], padding="constant", padding_value=-1.0)
    out = const(td.clone())["obs"]
    assert out.tolist() == [[-1, 0], [0, 1], [1, 2], [-1, 3], [3, 4], [4, 5]]


def test_data_path_batched_trajectories():
    obs = torch.arange(8.0).reshape(2, 4, 1)
    td = TensorDict({"obs": obs}, batch_size=[2, 4])
    out = CatFrames(N=2, dim=-1, in_keys=["obs"])(td)["obs"]
    assert out[1].tolist() == [[4, 4], [4, 5], [5, 6], [6, 7]]


def test_bad_args():
    with pytest.raises(ValueError, match="negative"):
        CatFrames(N=2, dim=0)
    with pytest.raises(ValueError, match="N must"):
        CatFrames(N=0, dim=-1)
    with pytest.raises(ValueError, match="padding"):
        CatFrames(N=2, dim=-1, padding="reflect")
    with pytest.raises(ValueError, match="time dim"):
        CatFrames(N=2, dim=-1, in_keys=["obs"])(TensorDict({"obs": torch.zeros(3)}))
    with pytest.raises(ValueError, match="fewer than 3 dims"):
        CatFrames(N=2, dim=-3, in_keys=["obs"])(TensorDict({"obs": torch.zeros(4, 3)}, [4]))
