"""PPO on Atari (Pong by default): ``streamrl run ppo_atari``.

Clipped PPO with the hyper-parameters of CleanRL's ``ppo_atari.py``: 8 envs x 128 steps per
batch, 4 epochs of 4 minibatches (256 steps each), lr 2.5e-4 annealed linearly to 0 over the
budget, GAE(0.99, 0.95), clip range 0.1 (not annealed: CleanRL anneals only the lr), value
prediction clipped with it too (``clip_vloss``), entropy coefficient 0.01, advantage
normalisation, gradient norm clipped at 0.5, 10M frames. The value coefficient is CleanRL's
0.5 times its ``0.5 * squared error``: streamrl's ``l2`` critic loss has no 0.5, so
``value_coef`` is 0.25 (the same gradient). Network: the Nature CNN (Mnih et al. 2015: 32 8x8
stride 4, 64 4x4 stride 2, 64 3x3 stride 1, Linear 512, ReLUs) on the 4 stacked 84x84 frames
divided by 255 inside the network (the batches keep uint8 pixels), one trunk shared by a
policy head (orthogonal init, gain 0.01) and a value head (gain 1); the trunk's layers get
gain sqrt(2), biases 0. The env is :func:`streamrl.envs.make_atari_env` (no-op starts, frame
skip 4 with max-pooling, FIRE on reset, 84x84 gray, rewards clipped to their sign); as
CleanRL's ``EpisodicLifeEnv``, a lost life ends the episode for the value estimate
(``("next", "end-of-life")`` is the loss's done flag) while the game goes on.

Frames: ``frames``, ``eval_interval`` and every ``frames`` column count agent steps (one
policy decision in one env, as CleanRL's ``global_step``); each is 4 emulator frames (the
frame skip), so the 10M default is 40M emulator frames.

Returns: ``train_return`` is the game score (``"episode_reward"``, the unclipped rewards of a
whole game, all lives), not the clipped rewards the learner sees. Evaluation plays
``eval_episodes`` games side by side on an env with unclipped rewards, with sampled actions
(an argmax policy can stall, e.g. never FIRE in Breakout), each cut at ``eval_max_steps``
agent steps (27k: 30 minutes of play at 60 Hz).

``--topology sync`` (default) collects a batch, then learns on it; ``--topology async``
collects the next batch in a worker process with the previous weights while the learner
trains, at most ``--max-policy-lag`` versions behind (``policy_lag`` in the metrics); PPO's
clipped ratio against the behaviour log-probs each batch carries is the off-policy
correction, and GAE uses the current critic (:class:`streamrl.train.ppo.PPOPipeline`);
``--value-estimator vtrace`` corrects the advantages and value targets too (V-trace).
``--resume`` continues from the last batch boundary with networks, optimizer, counters and
random generators restored; the emulators' state is not saved, so a resumed run starts new
games. Breakout by flag: ``--env-name BreakoutNoFrameskip-v4``.

    $ streamrl run ppo_atari --frames 100000 --topology async
    $ streamrl run ppo_atari --env-name BreakoutNoFrameskip-v4
    $ streamrl graph ppo_atari
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

import torch
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.data import OneHot
from streamrl.envs import EndOfLifeTransform, EnvBase, make_atari_env
from streamrl.envs.utils import ExplorationType
from streamrl.modules import Categorical, OneHotCategorical, ProbabilisticActor, ValueOperator
from streamrl.ops import play_episodes
from streamrl.train import check_positive_ints
from streamrl.train.ppo import PPOConfig, PPOPipeline

NAME = "ppo_atari"


@dataclass
class PPOAtariConfig(PPOConfig):
    """Hyper-parameters of the PPO Atari pipeline (defaults: CleanRL's ``ppo_atari.py``);
    the fields are :class:`streamrl.train.ppo.PPOConfig`'s (``hidden``: the trunk's last
    width), plus ``eval_max_steps`` (agent steps an evaluation game may last).

    >>> PPOAtariConfig().frames_per_batch, PPOAtariConfig().minibatch_size
    (1024, 256)
    """

    env_name: str = "PongNoFrameskip-v4"
    num_envs: int = 8
    steps_per_env: int = 128
    minibatch_size: int = 256
    epochs: int = 4
    lr: float = 2.5e-4
    anneal_lr: bool = True
    clip_epsilon: float = 0.1
    entropy_coef: float = 0.01
    value_coef: float = 0.25
    clip_value: bool = True
    hidden: int = 512
    frames: int = 10_000_000
    eval_interval: int = 500_000
    eval_episodes: int = 4
    eval_max_steps: int = 27_000

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "eval_max_steps")

    def make_env(self, num_envs: int) -> EnvBase:
        """``num_envs`` preprocessed Atari envs stepped in this process (rewards clipped)."""
        return make_atari_env(self.env_name, num_envs)

    def make_eval_env(self, num_envs: int) -> EnvBase:
        """The same envs with the game's own rewards (a return is the game score)."""
        return make_atari_env(self.env_name, num_envs, clip_reward=False)


class NatureCNN(nn.Module):
    """``uint8 [*, 4, 84, 84] -> [*, hidden]``: frames / 255, three ReLU convolutions, a ReLU
    linear layer (orthogonal init, gain sqrt(2), zero biases).

    With gradients on and ``reuse`` (default), a second call on the very same pixels tensor
    with unchanged weights returns the first call's output: the loss (``functional=False``:
    it calls this very module for both networks) runs the actor and the critic on each
    minibatch, and their shared trunk then runs (and back-propagates) once, as in CleanRL's
    single network; the cache holds one entry and is only used with gradients on
    (collection and GAE run without).

    >>> trunk = NatureCNN()
    >>> x = torch.zeros(2, 4, 84, 84, dtype=torch.uint8)
    >>> trunk(x).shape, trunk(x) is trunk(x)
    (torch.Size([2, 512]), True)
    """

    def __init__(self, frames: int = 4, hidden: int = 512, *, reuse: bool = True):
        super().__init__()
        self.reuse = reuse
        self._last: tuple[Any, ...] | None = None
        self.net = nn.Sequential(
            nn.Conv2d(frames, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, hidden), nn.ReLU(),
        )
        for layer in self.net:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                _init(layer, math.sqrt(2))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if not (self.reuse and torch.is_grad_enabled()):
            self._last = None
            return self._forward(pixels)
        # the key holds the tensor itself, so its memory cannot be reused by another while cached
        versions = tuple(p._version for p in self.parameters())
        last = self._last
        if (last is not None and last[0] is pixels and last[1] == pixels._version
                and last[2] == versions):
            return last[3]
        out = self._forward(pixels)
        self._last = (pixels, pixels._version, versions, out)
        return out

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        batch = pixels.shape[:-3]
        out = self.net(pixels.reshape(-1, *pixels.shape[-3:]).float() / 255.0)
        return out.reshape(*batch, out.shape[-1])


def _init(layer: nn.Module, gain: float) -> nn.Module:
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


def make_models(config: PPOAtariConfig, env: Any) -> tuple[ProbabilisticActor, ValueOperator]:
    """A categorical actor (``pixels -> logits -> action, action_log_prob``) and a value
    network (``pixels -> state_value``) sharing one :class:`NatureCNN` trunk."""
    spec = env.action_spec
    for _ in env.batch_size:  # the spec of one env: the actor runs on any number of rows
        spec = spec[0]
    n_actions = getattr(spec, "n", None)
    if n_actions is None:
        raise ValueError(f"{NAME} needs a discrete action space, found {type(spec).__name__} "
                         f"for {config.env_name!r}")
    frames = env.observation_spec["pixels"].shape[-3]
    trunk = NatureCNN(frames, config.hidden)
    policy_net = nn.Sequential(trunk, _init(nn.Linear(config.hidden, n_actions), 0.01))
    value_net = nn.Sequential(trunk, _init(nn.Linear(config.hidden, 1), 1.0))
    actor = ProbabilisticActor(
        TensorDictModule(policy_net, in_keys=["pixels"], out_keys=["logits"]),
        in_keys=["logits"],
        distribution_class=OneHotCategorical if isinstance(spec, OneHot) else Categorical,
        return_log_prob=True,
        spec=spec,
        safe=True,  # one-hot samples are float; the env takes the spec's integer dtype
    )
    return actor, ValueOperator(value_net, in_keys=["pixels"])


def end_episodes_at_lost_lives(loss: Any) -> None:
    """The value estimate treats a lost life as the episode's end (CleanRL's
    ``EpisodicLifeEnv``)."""
    EndOfLifeTransform().register_keys(loss)


def evaluate(config: PPOAtariConfig, env: EnvBase, actor: nn.Module) -> torch.Tensor:
    """Game scores of one game per sub-env, sampled actions, cut at ``eval_max_steps``."""
    return play_episodes(env, actor, exploration_type=ExplorationType.RANDOM,
                         seed=config.eval_seed, max_steps=config.eval_max_steps,
                         truncate=True).returns


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = PPOPipeline(NAME, PPOAtariConfig, make_models, __doc__, resume_episodes=False,
                        configure_loss=end_episodes_at_lost_lives, return_key="episode_reward",
                        evaluate=evaluate, loss_kwargs={"functional": False})
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph, run_identity = _pipeline.build_graph, _pipeline.run_identity
COLUMNS = _pipeline.columns

if __name__ == "__main__":
    sys.exit(main())
