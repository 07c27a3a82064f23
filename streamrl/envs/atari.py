"""make_atari_env: the standard DQN/PPO Atari env (Mnih et al. 2015) in one call, and
atari_transforms: the same preprocessing as composable transforms.

>>> from streamrl.envs import make_atari_env
>>> env = make_atari_env("PongNoFrameskip-v4", num_envs=2, seed=0)
>>> td = env.reset()
>>> td["pixels"].shape, td["pixels"].dtype  # 4 stacked 84x84 gray frames per env, uint8
(torch.Size([2, 4, 84, 84]), torch.uint8)
>>> env.rollout(3)["next", "reward"].shape  # rewards clipped to {-1, 0, 1}
torch.Size([2, 3, 1])
>>> env.close()
"""

from __future__ import annotations

from typing import Any

from streamrl.envs.batched import SerialEnv
from streamrl.envs.common import EnvBase
from streamrl.envs.libs._ale_frames import AtariFrames
from streamrl.envs.libs.gym import GymWrapper, register_optional_envs
from streamrl.envs.parallel import ParallelEnv
from streamrl.envs.transforms import (
    CatFrames,
    Compose,
    EndOfLifeTransform,
    FireResetEnv,
    FrameSkipTransform,
    GrayScale,
    NoopResetEnv,
    PermuteTransform,
    Resize,
    RewardSum,
    SignTransform,
    TimeMaxPool,
    Transform,
    TransformedEnv,
)

__all__ = ["atari_transforms", "make_atari_env"]


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, found {value!r}")
    return value


def _gym_kwargs(env_id: str, repeat_action_probability: float | None) -> dict[str, Any]:
    """gymnasium.make arguments giving single-frame steps (the transforms skip frames)."""
    kwargs: dict[str, Any] = {}
    if env_id.startswith("ALE/") and env_id.endswith("-v5"):
        kwargs["frameskip"] = 1  # v5 skips 4 frames by default
    elif not env_id.endswith("NoFrameskip-v4"):
        raise ValueError(
            f"make_atari_env expects an id that steps one frame at a time, "
            f"'<Game>NoFrameskip-v4' or 'ALE/<Game>-v5' (made with frameskip=1), found "
            f"{env_id!r}"
        )
    if repeat_action_probability is not None:
        if not 0.0 <= repeat_action_probability < 1.0:
            raise ValueError(
                f"repeat_action_probability must be in [0, 1), found {repeat_action_probability!r}"
            )
        kwargs["repeat_action_probability"] = repeat_action_probability
    return kwargs


def atari_transforms(
    action_meanings: list[str] | tuple[str, ...],
    *,
    frame_skip: int = 4,
    noop_max: int = 30,
    screen_size: int = 84,
    clip_reward: bool = True,
    in_key: str = "pixels",
) -> Compose:
    """The per-env Atari preprocessing of :func:`make_atari_env`, as one Compose of
    transforms for a single ALE env stepping one frame at a time (frames ``[210, 160, 3]``
    uint8 under ``in_key``).

    In order: :class:`NoopResetEnv` (1 to ``noop_max`` frames of NOOP after each reset),
    :class:`TimeMaxPool` (T=2) then :class:`FrameSkipTransform` (``frame_skip``; the pool
    sees every skipped frame, so each step's frame is the max of its last two frames),
    :class:`FireResetEnv` (games whose ``action_meanings`` include FIRE), a ``RewardSum``
    of the unclipped rewards (``"episode_reward"``: the game score),
    :class:`EndOfLifeTransform`, HWC to CHW (:class:`PermuteTransform`),
    :class:`GrayScale`, :class:`Resize` to ``screen_size`` (``"area"``), and
    :class:`SignTransform` on the reward (``clip_reward``). Frames stay uint8.

    >>> t = atari_transforms(["NOOP", "FIRE", "RIGHT", "LEFT"])
    >>> [type(x).__name__ for x in t][:4]
    ['NoopResetEnv', 'TimeMaxPool', 'FrameSkipTransform', 'FireResetEnv']
    """
    _check_int(frame_skip, "frame_skip", 1)
    _check_int(noop_max, "noop_max", 0)
    _check_int(screen_size, "screen_size", 1)
    fire = _check_meanings(action_meanings, noop_max)
    steps: list[Transform] = []
    if noop_max > 0:
        steps.append(NoopResetEnv(noop_max, random=True, noop_action=0))
    if frame_skip > 1:
        steps += [TimeMaxPool([in_key], T=2), FrameSkipTransform(frame_skip)]
    if fire:
        steps.append(FireResetEnv((1, 2)))
    steps += [
        RewardSum(),
        EndOfLifeTransform(),
        PermuteTransform((-1, -3, -2), in_keys=[in_key]),
        GrayScale(in_keys=[in_key]),
        Resize(screen_size, screen_size, interpolation="area", in_keys=[in_key]),
    ]
    if clip_reward:
        steps.append(SignTransform(in_keys=["reward"]))
    return Compose(*steps)


def _check_meanings(action_meanings: Any, noop_max: int) -> bool:
    """Whether the game takes FIRE after a reset; raises when the actions the preprocessing
    steps with (0: NOOP; 1: FIRE and 2) are not those."""
    if noop_max > 0 and (not action_meanings or action_meanings[0] != "NOOP"):
        raise ValueError(f"noop_max > 0 needs action 0 to be NOOP, found {action_meanings!r}")
    if "FIRE" not in action_meanings:
        return False
    if list(action_meanings[1:2]) != ["FIRE"] or len(action_meanings) < 3:
        raise ValueError(
            f"FireResetEnv takes actions 1 (FIRE) and 2; found action meanings "
            f"{action_meanings!r}"
        )
    return True


def _step_transforms(clip_reward: bool) -> list[Transform]:
    """The per-step part of the preprocessing (the per-frame part is AtariFrames')."""
    steps: list[Transform] = [RewardSum(), EndOfLifeTransform()]
    if clip_reward:
        steps.append(SignTransform(in_keys=["reward"]))
    return steps


def _make_one(
    env_id: str,
    gym_kwargs: dict[str, Any],
    options: dict[str, Any],
    categorical_action_encoding: bool,
    with_step_transforms: bool,
) -> EnvBase:
    import gymnasium as gym

    register_optional_envs(env_id)
    raw = gym.make(env_id, **gym_kwargs)
    try:
        fire = _check_meanings(raw.unwrapped.get_action_meanings(), options["noop_max"])
        frames = AtariFrames(
            raw,
            noop_max=options["noop_max"],
            frame_skip=options["frame_skip"],
            screen_size=options["screen_size"],
            fire=fire,
        )
        base = GymWrapper(frames, categorical_action_encoding=categorical_action_encoding)
    except BaseException:
        raw.close()
        raise
    if not with_step_transforms:
        return base
    return TransformedEnv(base, Compose(*_step_transforms(options["clip_reward"])))


class _AtariFactory:
    """Builds one preprocessed env (picklable: ParallelEnv sends it to its workers)."""

    def __init__(
        self, env_id: str, gym_kwargs: dict, options: dict, categorical: bool, steps: bool
    ) -> None:
        self.args = (env_id, gym_kwargs, options, categorical, steps)

    def __call__(self) -> EnvBase:
        return _make_one(*self.args)


def make_atari_env(
    env_id: str,
    num_envs: int = 1,
    *,
    seed: int | None = None,
    frame_stack: int = 4,
    frame_skip: int = 4,
    noop_max: int = 30,
    screen_size: int = 84,
    clip_reward: bool = True,
    repeat_action_probability: float | None = None,
    parallel: bool = False,
    categorical_action_encoding: bool = False,
    env_kwargs: dict[str, Any] | None = None,
) -> TransformedEnv:
    """A batch of ``num_envs`` Atari envs with the DQN/PPO preprocessing: ``"pixels"`` is
    ``[num_envs, frame_stack, screen_size, screen_size]`` uint8 (newest frame last).

    Each sub-env is a gymnasium env of ``env_id`` stepping one frame at a time
    (``"<Game>NoFrameskip-v4"``: no sticky actions; ``"ALE/<Game>-v5"``, made with
    ``frameskip=1``: sticky actions with probability 0.25 unless
    ``repeat_action_probability`` says otherwise) whose frames go through the per-frame part
    of :func:`atari_transforms` (no-ops, frame skip with max-pooling, FIRE reset, gray,
    resize) fused into one numpy loop (``AtariFrames``: the transforms' TensorDict
    machinery on every emulator frame would cost 4x the emulator; the tests check that the
    frames are the transforms'), as a :class:`GymWrapper`. The batch (:class:`SerialEnv`,
    or :class:`ParallelEnv` with ``parallel=True``) is wrapped in the per-step transforms
    (:class:`RewardSum`, :class:`EndOfLifeTransform`, :class:`SignTransform`; inside each
    worker with ``parallel=True``) and :class:`CatFrames` (``frame_stack`` frames,
    zero-padded after a reset, so only single frames cross process boundaries).

    Entries: ``"pixels"``; ``"lives"`` and ``("next", "end-of-life")`` (a lost life or
    the game's end: pass it to the loss with
    ``EndOfLifeTransform().register_keys(loss)``, the env does not reset on it);
    ``"episode_reward"`` (the unclipped game score so far); the reward clipped to its
    sign (``clip_reward``). Frames stay uint8 until the network: divide by 255 there
    (replay buffers then store 1 byte per pixel).

    Args:
        env_id: a NoFrameskip-v4 or ALE v5 id.
        num_envs: sub-envs (batch size ``[num_envs]``).
        seed: sub-env ``i`` gets ``seed + i`` (its first reset is ``reset(seed=seed + i)``,
            as SB3's ``make_atari_env``); None leaves the envs unseeded.
        frame_stack, frame_skip, noop_max, screen_size, clip_reward: the preprocessing
            (SB3's defaults; 1, 1, 0 turn stacking, skipping, no-ops off).
        repeat_action_probability: ALE's sticky-action probability (None: the id's own).
        parallel: sub-envs in worker processes (:class:`ParallelEnv`).
        categorical_action_encoding: action indices instead of one-hot vectors.
        env_kwargs: more ``gymnasium.make`` arguments (e.g. ``full_action_space``).

    The number of no-ops comes from torch's RNG (``torch.manual_seed`` in this process;
    ParallelEnv workers are seeded by ``seed``), not from the gymnasium env's as in SB3.
    """
    _check_int(num_envs, "num_envs", 1)
    _check_int(frame_stack, "frame_stack", 1)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, found {type(seed).__name__}")
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a str, found {type(env_id).__name__}")
    gym_kwargs = {**_gym_kwargs(env_id, repeat_action_probability), **(env_kwargs or {})}
    options = {
        "frame_skip": frame_skip,
        "noop_max": noop_max,
        "screen_size": screen_size,
        "clip_reward": clip_reward,
    }
    # check the arguments here, before any process starts
    atari_transforms(["NOOP", "FIRE", "UP"], **options)
    # the per-step transforms run on the batch (once per step, not once per sub-env); in
    # worker processes they run in each worker (EndOfLifeTransform reads the emulator)
    make = _AtariFactory(env_id, gym_kwargs, options, categorical_action_encoding, parallel)
    batch = ParallelEnv(num_envs, make) if parallel else SerialEnv(num_envs, make)
    steps = [] if parallel else _step_transforms(clip_reward)
    stack = CatFrames(frame_stack, dim=-3, in_keys=["pixels"], padding="constant")
    env = TransformedEnv(batch, Compose(*steps, stack))
    if seed is not None:
        env.set_seed(seed)
    return env
