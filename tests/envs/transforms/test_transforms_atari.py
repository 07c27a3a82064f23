"""The Atari preprocessing transforms on small envs (no emulator): FireResetEnv,
NoopResetEnv(noop_action=), max-pooled frame skip (TimeMaxPool before FrameSkipTransform),
Resize(interpolation="area"); contracts. The ALE comparison with SB3 is in
tests/envs/test_atari.py."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from transform_contract import TransformContractTests
from transform_test_envs import CountingEnv

from streamrl.data.specs import Categorical, OneHot
from streamrl.envs import SerialEnv
from streamrl.envs.transforms import (
    Compose,
    FireResetEnv,
    FrameSkipTransform,
    NoopResetEnv,
    Resize,
    RewardSum,
    StepCounter,
    TimeMaxPool,
    TransformedEnv,
)


class DiscreteEnv(CountingEnv):
    """CountingEnv with 4 one-hot actions (Categorical with ``categorical=True``); every
    action index it is stepped with is appended to ``actions``."""

    def __init__(self, batch_size=(), categorical: bool = False, **kwargs) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        b = self.batch_size
        if categorical:
            self.action_spec = Categorical(4, shape=b, dtype=torch.int64)
        else:
            self.action_spec = OneHot(4, shape=(*b, 4), dtype=torch.int64)
        self.categorical = categorical
        self.actions: list = []

    def _step(self, tensordict):
        a = tensordict.get("action")
        self.actions.append((a if self.categorical else a.argmax(-1)).flatten().tolist())
        return super()._step(tensordict)


class FlickerEnv(CountingEnv):
    """CountingEnv whose pixels flicker: ``c + 100`` on odd counts, ``c`` on even ones."""

    def _obs(self):
        out = super()._obs()
        if self.pixels:
            value = (self.count + 100 * (self.count % 2)).to(torch.uint8)
            out["pixels"] = value.reshape(*self.batch_size, 1, 1, 1).expand(
                *self.batch_size, *self.hw, 3
            ).clone()
        return out


# ---------------------------------------------------------------------------- FireResetEnv
@pytest.mark.parametrize("categorical", [False, True])
def test_fire_reset_takes_its_actions_after_each_reset(categorical):
    base = DiscreteEnv(max_count=100, categorical=categorical)
    env = TransformedEnv(base, Compose(StepCounter(), FireResetEnv((1, 2))))
    td = env.reset()
    assert base.actions == [[1], [2]]
    assert td["observation"][0].item() == 2.0  # the output is after the last action
    assert td["step_count"].item() == 2  # the actions went through the transforms before
    assert td["done"].item() is False
    env.reset()
    assert base.actions == [[1], [2], [1], [2]]


def test_fire_reset_after_frame_skip_takes_skipped_steps():
    base = DiscreteEnv(max_count=100)
    env = TransformedEnv(base, Compose(FrameSkipTransform(4), FireResetEnv((1, 2)), RewardSum()))
    td = env.reset()
    assert base.actions == [[1]] * 4 + [[2]] * 4
    assert td["observation"][0].item() == 8.0
    assert td["episode_reward"].item() == 0.0  # rewards of the reset actions are dropped


def test_fire_reset_restarts_when_the_episode_ends_and_gives_up():
    base = DiscreteEnv(max_count=3)
    env = TransformedEnv(base, FireResetEnv((1, 1, 1, 1)))
    with pytest.raises(RuntimeError, match="resets in a row"):
        env.reset()
    ok = TransformedEnv(DiscreteEnv(max_count=3), FireResetEnv((1, 1)))
    assert ok.reset()["observation"][0].item() == 2.0
    assert ok.base_env.reset_calls == 1


def test_fire_reset_batched_full_and_partial_resets():
    env = TransformedEnv(DiscreteEnv(batch_size=(2,), max_count=100), FireResetEnv((1,)))
    td = env.reset()
    assert td["observation"][:, 0].tolist() == [1.0, 1.0]
    assert env.base_env.actions == [[1, 1]]
    td["_reset"] = torch.tensor([[True], [False]])
    with pytest.raises(ValueError, match="inside each sub-env"):
        env.reset(td)
    inside = SerialEnv(2, lambda: TransformedEnv(DiscreteEnv(max_count=100), FireResetEnv((1,))))
    assert inside.reset()["observation"][:, 0].tolist() == [1.0, 1.0]
    inside.close()


def test_fire_reset_bad_input():
    for bad in ((), (1, -1), (1.0,), (True,), 3, "12"):
        with pytest.raises(ValueError, match="action indices"):
            FireResetEnv(bad)
    with pytest.raises(TypeError, match="discrete action spec"):
        TransformedEnv(CountingEnv(), FireResetEnv()).reset()
    with pytest.raises(ValueError, match="out of range"):
        TransformedEnv(DiscreteEnv(), FireResetEnv((4,))).reset()
    td = TensorDict({"observation": torch.ones(3)})
    assert FireResetEnv()(td) is td  # plain data: nothing to do
    assert repr(FireResetEnv((1,))) == "FireResetEnv(actions=(1,))"


class _OneByOneContract(TransformContractTests):
    """Reset transforms that step their env refuse partial resets of a batched env (the
    documented limit: put them inside each sub-env); every other setting must pass."""

    base_env = DiscreteEnv

    def test_outside_serial_env(self):
        with pytest.raises(ValueError, match="inside each sub-env"):
            super().test_outside_serial_env()


class TestFireResetEnvContract(_OneByOneContract):
    def make_transform(self):
        return FireResetEnv((1,))


class TestNoopActionContract(_OneByOneContract):
    def make_transform(self):
        return NoopResetEnv(1, random=False, noop_action=0)


# ---------------------------------------------------------------------------- NoopResetEnv
def test_noop_reset_with_a_fixed_action():
    base = DiscreteEnv(max_count=100)
    env = TransformedEnv(base, NoopResetEnv(3, random=False, noop_action=0))
    assert env.reset()["observation"][0].item() == 3.0
    assert base.actions == [[0], [0], [0]]
    assert "noop_action=0" in repr(env.transform[0])
    cat = DiscreteEnv(max_count=100, categorical=True)
    TransformedEnv(cat, NoopResetEnv(2, random=False, noop_action=3)).reset()
    assert cat.actions == [[3], [3]]
    for bad in (-1, 1.0, True):
        with pytest.raises(ValueError, match="noop_action"):
            NoopResetEnv(noop_action=bad)
    with pytest.raises(TypeError, match="discrete action spec"):
        TransformedEnv(CountingEnv(max_count=100), NoopResetEnv(2, noop_action=0)).reset()


# ---------------------------------------------------------------------------- max-pooled frame skip
def test_time_max_pool_before_frame_skip_pools_the_last_two_frames():
    def env(pool: bool):
        transforms = [TimeMaxPool(["pixels"], T=2)] if pool else []
        base = FlickerEnv(max_count=10, pixels=True, hw=(2, 2))
        return TransformedEnv(base, Compose(*transforms, FrameSkipTransform(4)))

    def pixels(e):
        return e.rollout(3)["next", "pixels"][:, 0, 0, 0].tolist()

    # frames 1..4, 5..8, 9..10 (done): the last frame is even (dark), its predecessor bright
    assert pixels(env(False)) == [4, 8, 10]
    assert pixels(env(True)) == [103, 107, 109]  # max of frames (3, 4), (7, 8), (9, 10)
    early = TransformedEnv(
        FlickerEnv(max_count=5, pixels=True, hw=(2, 2)),
        Compose(TimeMaxPool(["pixels"], T=2), FrameSkipTransform(4)),
    )
    # the episode ends at frame 5, the first of a step: pooled with frame 4 (the last seen)
    assert pixels(early) == [103, 105]


# ---------------------------------------------------------------------------- Resize "area"
def test_resize_area_weights_pixels_by_the_area_they_cover():
    img = torch.arange(10.0).reshape(1, 1, 10)  # [C, H, W]
    out = Resize(1, 4, interpolation="area")._apply_transform(img)
    # 2.5 input pixels per output pixel: (0 + 1 + 2/2) / 2.5, (2/2 + 3 + 4) / 2.5, ...
    assert torch.allclose(out.flatten(), torch.tensor([0.8, 3.2, 5.8, 8.2]))
    # integer factors: plain block means (F.interpolate's "area"); uint8 rounds half to even
    x = torch.tensor([[[1, 2, 5, 6], [3, 4, 7, 8]]], dtype=torch.uint8)
    assert Resize(1, 2, interpolation="area")._apply_transform(x).tolist() == [[[2, 6]]]
    same = torch.rand(2, 3, 5, 7)
    assert torch.equal(Resize(5, 7, interpolation="area")._apply_transform(same), same)
    up = Resize(1, 4, interpolation="area")._apply_transform(torch.tensor([[[0.0, 8.0]]]))
    assert up.flatten().tolist() == [0.0, 0.0, 8.0, 8.0]  # growing: each covers one pixel
    batched = torch.rand(2, 3, 1, 21, 16)
    out = Resize(8, interpolation="area")._apply_transform(batched)
    assert out.shape == (2, 3, 1, 8, 8)
    assert torch.allclose(out.mean((-1, -2)), batched.mean((-1, -2)), atol=1e-5)  # mass kept


# ---------------------------------------------------------------------------- CatFrames on stored frames
def test_cat_frames_on_data_stacks_next_frames_as_the_env_does(counting_env):
    from streamrl.envs.transforms import CatFrames

    def cat(*keys):
        return CatFrames(3, -1, in_keys=list(keys), padding="constant", padding_value=-1.0)

    env = TransformedEnv(counting_env(max_count=3), cat("observation"))
    rollout = env.rollout(5, break_when_any_done=False)  # an episode ends at step 2
    single = rollout.clone()
    for key in ("observation", ("next", "observation")):
        single.set(key, single.get(key)[:, -3:])  # the newest frame (3 values)
    rebuilt = cat("observation", ("next", "observation"))(single)
    assert torch.equal(rebuilt["observation"], rollout["observation"])
    assert torch.equal(rebuilt["next", "observation"], rollout["next", "observation"])
    assert rebuilt["next", "observation"][3, ::3].tolist() == [-1.0, 0.0, 1.0]  # after the reset


def test_make_rb_transform_and_sampler_arguments():
    from streamrl.data import SliceSampler
    from streamrl.envs.transforms import CatFrames

    transform, sampler = CatFrames(4, -3).make_rb_transform_and_sampler(8, traj_key="episode")
    assert isinstance(sampler, SliceSampler) and sampler.slice_len == 4
    assert sampler.traj_key == "episode" and sampler.truncated_key is None
    assert "batch_size=8" in repr(transform)
    with pytest.raises(ValueError, match="batch_size"):
        CatFrames(4, -3).make_rb_transform_and_sampler(0)
    with pytest.raises(TypeError, match="init_key"):
        CatFrames(4, -3).make_rb_transform_and_sampler(8, init_key="x")
    with pytest.raises(ValueError, match="flat sample"):
        transform(TensorDict({"pixels": torch.zeros(4, 1, 2, 2)}, [4]))
