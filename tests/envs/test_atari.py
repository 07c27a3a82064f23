"""make_atari_env: frame for frame against SB3's make_atari_env + VecFrameStack(4) on the
same seed and actions; specs, arguments, worker processes.

Two things differ by design and are aligned here (docs/torchrl_differences.md):
- a lost life is flagged (``("next", "end-of-life")``), never a reset: SB3 runs with
  ``terminal_on_life_loss=False``, and our flag is checked against SB3's ``info["lives"]``;
- the number of no-ops is drawn from torch's RNG, SB3 draws it from the gymnasium env's:
  SB3's NoopResetEnv is given the count from ``torch.randint`` in the order both stacks
  reset (sub-env 0, 1, ... at the start, then each done sub-env in turn).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from streamrl.envs import (
    CatFrames,
    GymEnv,
    ParallelEnv,
    SerialEnv,
    TransformedEnv,
    atari_transforms,
    make_atari_env,
)
from streamrl.envs.libs._ale_frames import AtariFrames
from streamrl.envs.utils import check_env_specs
from streamrl.testing import EnvContractTests

ale_py = pytest.importorskip("ale_py")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # frame-sized ops on a busy 2-core machine: intra-op threads only add contention
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sb3_run(monkeypatch, env_id, num_envs, seed, actions):
    pytest.importorskip("cv2")  # SB3's WarpFrame resizes with OpenCV
    import gymnasium
    import stable_baselines3.common.atari_wrappers as wrappers
    from stable_baselines3.common.env_util import make_atari_env as sb3_make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    reset = wrappers.NoopResetEnv.reset

    def torch_noops(self, **kwargs):
        self.override_num_noops = int(torch.randint(1, self.noop_max + 1, ()))
        return reset(self, **kwargs)

    monkeypatch.setattr(wrappers.NoopResetEnv, "reset", torch_noops)
    gymnasium.register_envs(ale_py)
    env_kwargs = {"frameskip": 1} if env_id.startswith("ALE/") else None
    vec = sb3_make_atari_env(
        env_id,
        n_envs=num_envs,
        seed=seed,
        env_kwargs=env_kwargs,
        wrapper_kwargs={"terminal_on_life_loss": False},
    )
    env = VecFrameStack(vec, 4)
    try:
        out = {"obs": [env.reset()], "reward": [], "done": [], "lives": [], "terminal": []}
        for a in actions:
            obs, reward, done, infos = env.step(a)
            out["obs"].append(obs)
            out["reward"].append(reward)
            out["done"].append(done)
            out["lives"].append([info["lives"] for info in infos])
            out["terminal"].append([info.get("terminal_observation") for info in infos])
    finally:
        env.close()
    return out


def _transforms_env(env_id, num_envs, seed):
    """The same preprocessing composed from transforms, as a TorchRL user writes it."""
    def one():
        kwargs = {"frameskip": 1} if env_id.endswith("-v5") else {}
        base = GymEnv(env_id, **kwargs)
        return TransformedEnv(base, atari_transforms(base.unwrapped.get_action_meanings()))

    env = TransformedEnv(SerialEnv(num_envs, one), CatFrames(4, dim=-3, in_keys=["pixels"], padding="constant"))
    env.set_seed(seed)
    return env


def _ours(env_id, num_envs, seed, actions, n_actions, build="make_atari_env"):
    if build == "make_atari_env":
        env = make_atari_env(env_id, num_envs=num_envs, seed=seed)
    else:
        env = _transforms_env(env_id, num_envs, seed)
    t = iter(range(len(actions)))

    def policy(td):
        td["action"] = torch.nn.functional.one_hot(torch.as_tensor(actions[next(t)]), n_actions)
        return td

    try:
        return env.rollout(len(actions), policy, break_when_any_done=False)
    finally:
        env.close()


@pytest.mark.parametrize("build", ["make_atari_env", "transforms"])
@pytest.mark.parametrize(
    "env_id, steps",
    [
        # FIRE reset, 5 lives, games that end within the budget (sub-env 0 at step 265)
        ("BreakoutNoFrameskip-v4", 280),
        # v5 made with frameskip=1: sticky actions (p=0.25) drawn by ALE from the same seed
        ("ALE/Breakout-v5", 200),
    ],
)
def test_matches_sb3_frame_for_frame(monkeypatch, env_id, steps, build):
    # make_atari_env's fused frame loop (AtariFrames) and the transforms it stands for both
    num_envs, seed = 2, 3  # Breakout: 4 actions
    actions = np.random.default_rng(0).integers(0, 4, size=(steps, num_envs))
    torch.manual_seed(seed)
    sb3 = _sb3_run(monkeypatch, env_id, num_envs, seed, actions)
    torch.manual_seed(seed)
    ours = _ours(env_id, num_envs, seed, actions, 4, build)

    # SB3's frames are [env, 84, 84, stack] (channels last); ours [env, stack, 84, 84]
    sb3_obs = torch.from_numpy(np.stack(sb3["obs"])).permute(1, 0, 4, 2, 3)
    done = ours["next", "done"].squeeze(-1)
    assert torch.equal(done, torch.from_numpy(np.stack(sb3["done"])).T)
    assert done.any(), "the budget should cover a game over (reset alignment)"
    reward = ours["next", "reward"].squeeze(-1)
    assert torch.equal(reward, torch.from_numpy(np.stack(sb3["reward"])).T.float())
    assert reward.any()
    lives = torch.tensor(sb3["lives"]).T
    assert torch.equal(ours["next", "lives"], lives)
    before = torch.cat([ours["lives"][:, :1], lives[:, :-1]], 1)
    lost = (lives < before) | done
    assert torch.equal(ours["next", "end-of-life"].squeeze(-1), lost) and lost.any()

    assert torch.equal(ours["pixels"][:, 0], sb3_obs[:, 0])  # first observation
    for i in range(num_envs):
        for t in range(steps):
            # SB3 returns the reset observation after a done step: our root at t + 1
            if not done[i, t]:
                assert torch.equal(ours["next", "pixels"][i, t], sb3_obs[i, t + 1]), (i, t)
                continue
            terminal = torch.from_numpy(sb3["terminal"][t][i]).permute(2, 0, 1)
            assert torch.equal(ours["next", "pixels"][i, t], terminal), (i, t)
            if t + 1 < steps:
                assert torch.equal(ours["pixels"][i, t + 1], sb3_obs[i, t + 1]), (i, t)


def test_specs_entries_and_batch():
    env = make_atari_env("PongNoFrameskip-v4", num_envs=2, seed=1, frame_stack=3, noop_max=2)
    try:
        assert isinstance(env.base_env, SerialEnv) and env.batch_size == (2,)
        check_env_specs(env, steps=3)
        spec = env.observation_spec
        assert spec["pixels"].shape == (2, 3, 84, 84) and spec["pixels"].dtype == torch.uint8
        assert {"lives", "episode_reward"} <= set(spec.keys())
        assert env.action_spec.shape == (2, 6)  # Pong's 6 one-hot actions
        td = env.rollout(3)
        assert set(td["next", "reward"].unique().tolist()) <= {-1.0, 0.0, 1.0}
        # zero padding after a reset: the reset frame is the only non-zero one
        first = td["pixels"][:, 0]
        assert not first[:, :2].any() and first[:, 2].any()
    finally:
        env.close()


def test_seeded_parallel_env_repeats_and_workers_draw_their_own_noops():
    def frames(seed):
        env = make_atari_env(
            "PongNoFrameskip-v4", num_envs=2, seed=seed, parallel=True,
            categorical_action_encoding=True, noop_max=30,
        )
        try:
            assert isinstance(env.base_env, ParallelEnv) and env.action_spec.shape == (2,)
            first = env.reset()["pixels"]
            check_env_specs(env, steps=2)  # the preprocessing inside worker processes
            return first
        finally:
            env.close()

    # each worker's torch RNG is seeded from its sub-env's seed: the no-op counts repeat
    assert torch.equal(frames(5), frames(5))


def test_options_turn_steps_off():
    env = make_atari_env(
        "ALE/Pong-v5", seed=0, frame_stack=1, frame_skip=1, noop_max=0, screen_size=42,
        clip_reward=False, repeat_action_probability=0.0,
    )
    try:
        frames = env.base_env._envs[0]._env
        assert isinstance(frames, AtariFrames)
        assert (frames.frame_skip, frames.noop_max, frames.fire) == (1, 0, True)
        names = [type(t).__name__ for t in env.transform]
        assert "SignTransform" not in names and "RewardSum" in names
        assert env.reset()["pixels"].shape == (1, 1, 42, 42)
    finally:
        env.close()


def test_frames_without_opencv_are_the_same():
    # the torch fallback (GrayScale and Resize's own code) gives OpenCV's pixels
    import gymnasium as gym

    def frames(use_opencv):
        env = AtariFrames(gym.make("BreakoutNoFrameskip-v4"), noop_max=5, frame_skip=4,
                          screen_size=84, fire=True, use_opencv=use_opencv)
        torch.manual_seed(0)
        out = [env.reset(seed=1)[0]["pixels"]]
        out += [env.step(a)[0]["pixels"] for a in [3, 3, 2, 2, 0, 1, 3, 3]]
        env.close()
        return np.stack(out)

    pytest.importorskip("cv2")
    a, b = frames(True), frames(False)
    assert a.shape == (9, 1, 84, 84) and a.dtype == np.uint8
    assert np.array_equal(a, b)


def test_frames_reject_non_rgb_observations():
    import gymnasium as gym

    with pytest.raises(ValueError, match=r"RGB frames \[H, W, 3\].*found observation shape"):
        AtariFrames(gym.make("BreakoutNoFrameskip-v4", obs_type="grayscale"), noop_max=0,
                    frame_skip=4, screen_size=84, fire=False)


def test_bad_arguments_fail_before_any_env_starts():
    with pytest.raises(ValueError, match="NoFrameskip-v4"):
        make_atari_env("Pong-v4")
    with pytest.raises(ValueError, match="frame_stack"):
        make_atari_env("PongNoFrameskip-v4", frame_stack=0)
    with pytest.raises(ValueError, match="frame_skip"):
        make_atari_env("PongNoFrameskip-v4", frame_skip=0)
    with pytest.raises(ValueError, match="num_envs"):
        make_atari_env("PongNoFrameskip-v4", num_envs=0)
    with pytest.raises(ValueError, match="repeat_action_probability"):
        make_atari_env("ALE/Pong-v5", repeat_action_probability=1.5)
    with pytest.raises(TypeError, match="seed"):
        make_atari_env("PongNoFrameskip-v4", seed="0")
    with pytest.raises(ValueError, match="NOOP"):
        atari_transforms(["FIRE", "NOOP"])
    with pytest.raises(ValueError, match="FIRE"):
        atari_transforms(["NOOP", "UP", "FIRE"])


def test_replay_stores_each_frame_once_and_rebuilds_the_stacks():
    from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
    from streamrl.envs.transforms import CatFrames

    env = make_atari_env("BreakoutNoFrameskip-v4", num_envs=2, seed=0, noop_max=3)
    torch.manual_seed(0)
    try:
        data = env.rollout(40, break_when_any_done=False)  # [2, 40]
    finally:
        env.close()
    stack = env.transform[-1]
    assert isinstance(stack, CatFrames)
    keys = ["pixels", ("next", "pixels")]
    cat = CatFrames(stack.N, stack.dim, in_keys=keys, padding="constant")
    transform, sampler = cat.make_rb_transform_and_sampler(batch_size=16, traj_key="env")
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(100), sampler=sampler, transform=transform, batch_size=64
    )
    for i in range(2):
        rows = data[i].clone()
        for key in keys:  # the newest frame of each stack: 1 of 4 frames stored
            rows.set(key, rows.get(key)[:, -1:].clone())
        rows["env"] = torch.full((40,), i)
        rb.extend(rows)
    assert rb[0]["pixels"].shape == (1, 84, 84)
    for _ in range(3):
        sample = rb.sample()
        assert sample.batch_size == (16,)
        for row in sample:
            i, t = divmod(int(row["index"]), 40)
            assert torch.equal(row["pixels"], data[i, t]["pixels"])
            assert torch.equal(row["next", "pixels"], data[i, t]["next", "pixels"])
    with pytest.raises(ValueError, match="expected 16 windows"):
        rb.sample(32)


class TestMakeAtariEnvContract(EnvContractTests):
    stepping_steps = 20

    def make_env(self):
        # episodes of 42 emulator frames: the stepping check crosses time-limit ends, one of
        # them inside a frame skip
        return make_atari_env("BreakoutNoFrameskip-v4", num_envs=2, noop_max=3,
                              env_kwargs={"max_episode_steps": 42})
