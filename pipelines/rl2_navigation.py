"""RL^2 on 2D navigation: ``streamrl run rl2_navigation``.

RL^2 (Duan et al. 2016): a recurrent policy learns to adapt to a task it is not told, from
what happens to it: its input is the observation plus the previous action, reward and done
flag (:class:`~streamrl.envs.transforms.PreviousStepInputs`), and its hidden state is kept
across the ``episodes_per_trial`` episodes of a trial (one task) and reset only when a new
task starts. Trained with PPO on the trial as the unit, it learns to explore in the first
episode and exploit what it found in the next ones.

The env: :class:`~streamrl.envs.PointNavigationEnv` (the MAML paper's point moved towards
a goal it does not observe, reward minus the squared distance; ``max_steps`` steps per
episode, 20 here against the paper's 100, which is plenty to reach any goal of the
``[-0.5, 0.5]`` square with moves of 0.1), its goal drawn per trial by
:class:`~streamrl.envs.tasks.SampleTask` with a
:class:`~streamrl.envs.tasks.NavigationFamily` (``resample="trial"``), one env of
``num_envs`` rows (``PointNavigationEnv(batch_size=[num_envs])``, a task per row: each row
its own task stream, seeded ``seed``, ``seed + 1`` ..., as the members of a ``SerialEnv``
would be, at a fraction of the cost).

The policy: the observation and the previous action, reward and done go through one
:class:`~streamrl.modules.GRUModule` whose reset key (``is_init``) is ``("task", "new")``,
True at the first reset of a task only; its primer keeps the state at the other resets
(``keep_at_reset=True``), so in collection the state runs through the whole trial. A
tanh-Gaussian head (state-independent scale) and a value head read the GRU's features:
**the critic shares the actor's GRU** (as CleanRL's recurrent PPO), so there is one hidden
state, stored by the collector at every step, and the critic's value at any step is
computed from it; the loss calls the networks as they are (``functional=False``) so that
the GRU stays one module, trained by both terms.

Recurrent PPO (:class:`streamrl.train.ppo.PPOPipeline` with ``sequence_length``): each
batch is ``[num_envs, steps_per_env]``; the learner cuts each env's row into sequences of
``sequence_length`` steps (default: the whole row), draws minibatches of whole sequences
and runs the GRU over each from the state the collector stored at its first step,
resetting it where ``("task", "new")`` is set inside (a new trial), exactly as in
collection. GAE's values come from one call over each row (``shifted=True``), so the
value after an episode end inside a trial is that of the next input the policy sees (the
reset observation, with the state carried on).

**The trial is the unit of return.** The value estimator's ``done`` and ``terminated``
keys are ``("task", "end")``, which :class:`~streamrl.envs.tasks.SampleTask` sets on the
step that ends a trial's last episode: the env's ``done`` at an episode end inside a trial
does not cut the return or GAE's trace (the next episode's rewards are the payoff of the
first one's exploration), and a trial's end is terminal (value 0: the agent forgets; a
trial is a finite horizon, so there is nothing to bootstrap). The one approximation: when
the last step of a row ends an episode inside a trial, its bootstrap value is the
critic's at the episode's last observation (the reset that follows is in the next batch).
The training returns (``train_return``) are per episode, as the env's ``done`` cuts them.

Evaluation: every ``eval_interval`` frames, ``eval_episodes`` held-out tasks (a table
drawn from the family with ``eval_seed``, never the training streams), one trial each, side
by side, with deterministic actions. Logged: ``eval_first_return`` (mean return of the
trial's first episode: before adaptation), ``eval_last_return`` (its last episode: after
adaptation) and ``eval_return`` (the mean over the trial's episodes). A run directory
receives ``config.json``, ``metrics.csv`` / ``metrics.jsonl``, the run logger's files,
``checkpoint.pt`` and ``learning_curve.png`` as for every PPO pipeline; ``--resume``
continues with the networks, optimizer, counters and generators restored and new trials
(the envs' task streams are reseeded with ``seed`` plus the frames done).

    $ streamrl run rl2_navigation --seed 1
    $ python benchmarks/rl2_navigation.py --frames 2457600 --seeds 0,1,2
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from streamrl.data.specs import Unbounded
from streamrl.envs import Compose, EnvBase, PointNavigationEnv, TransformedEnv
from streamrl.envs.tasks import NavigationFamily, SampleTask
from streamrl.envs.transforms import PreviousStepInputs, TensorDictPrimer
from streamrl.envs.utils import ExplorationType, set_exploration_type
from streamrl.modules import (
    MLP,
    AddStateIndependentNormalScale,
    GRUModule,
    ProbabilisticActor,
    TanhNormal,
)
from streamrl.objectives import ClipPPOLoss
from streamrl.train import check_field
from streamrl.train.ppo import PPOConfig, PPOPipeline, orthogonal_init_

NAME = "rl2_navigation"

#: the inputs of the policy: what it sees and what happened on the step that led there
INPUT_KEYS = ("observation", "prev_action", "prev_reward", "prev_done")
#: the GRU's state (in the env's specs by the primer) and its reset key
STATE_KEY = "recurrent_state"
NEW_TASK_KEY = ("task", "new")
#: the value estimator's done and terminated key: a trial's end
TRIAL_END_KEY = ("task", "end")


@dataclass
class RL2Config(PPOConfig):
    """Hyper-parameters of the RL^2 navigation pipeline; the fields are
    :class:`streamrl.train.ppo.PPOConfig`'s (``hidden`` is the GRU's size), plus the
    episode horizon ``max_steps`` and the trial's ``episodes_per_trial``.
    ``sequence_length`` defaults to ``steps_per_env`` (whole rows); ``eval_episodes`` is the
    number of held-out tasks, one trial each.

    The defaults: 64 rows of 120 steps a batch (7,680 frames; minibatches of 16 whole rows)
    and ``lr=2e-3``, 320 batches (about 6 minutes on one thread). Measured on seed 0 with
    2.46M frames, held-out return of a trial's first episode -> its last: 64 rows at
    ``lr=1e-3`` -1.70 -> -0.75, at ``lr=2e-3`` -1.08 -> -0.25 (adapting clearly from ~900k
    frames on); the former defaults (16 rows, ``lr=1e-3``) gave -3.22 -> -2.79 over 3 seeds
    at 400k frames."""

    env_name: str = "PointNavigation"
    num_envs: int = 64
    steps_per_env: int = 120
    minibatch_size: int = 1920
    epochs: int = 4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    lr: float = 2e-3
    entropy_coef: float = 0.0
    hidden: int = 64
    frames: int = 2_457_600
    eval_interval: int = 19_200
    eval_episodes: int = 32
    max_steps: int = 20
    episodes_per_trial: int = 2

    def __post_init__(self) -> None:
        if self.sequence_length is None:
            self.sequence_length = self.steps_per_env
        super().__post_init__()
        check_field(self, "max_steps", self.max_steps >= 1, ">= 1")
        check_field(self, "episodes_per_trial", self.episodes_per_trial >= 1, ">= 1")

    def make_env(self, num_envs: int) -> EnvBase:
        """One navigation env of ``num_envs`` rows, each drawing a task per trial from its
        own stream, with the previous step's inputs and the GRU's state (kept at resets)."""
        return _with_inputs(_navigation(num_envs, self.max_steps, self.episodes_per_trial),
                            self.hidden)

    def make_eval_env(self, num_envs: int) -> EnvBase:
        """``num_envs`` rows, row ``i`` on held-out task ``i`` (a table drawn with
        ``eval_seed``), one trial each after ``set_seed``."""
        tasks = held_out_tasks(num_envs, self.eval_seed)
        return _with_inputs(_navigation(num_envs, self.max_steps, self.episodes_per_trial, tasks),
                            self.hidden)


def held_out_tasks(n: int, seed: int) -> torch.Tensor:
    """``n`` goals of the family, ``[n, 2]``, drawn with their own generator."""
    return NavigationFamily().sample(n, torch.Generator().manual_seed(seed))


#: the env's largest move per coordinate: the tanh-Gaussian's bounds (the env's action spec
#: is unbounded, as it clips any action itself)
MAX_ACTION = 0.1


def _navigation(num_envs: int, max_steps: int, episodes_per_trial: int,
                tasks: Any = None) -> EnvBase:
    # one natively batched env, a task per row: row i draws the stream a SerialEnv's member
    # i would (seeded seed + i) and starts at table row i, at a fraction of the cost
    return TransformedEnv(
        PointNavigationEnv(batch_size=[num_envs], max_steps=max_steps, max_action=MAX_ACTION),
        SampleTask(NavigationFamily(), tasks=tasks, resample="trial",
                   episodes_per_trial=episodes_per_trial))


def _with_inputs(env: EnvBase, hidden: int) -> EnvBase:
    # the GRUModule's primer (one layer), built here because the env comes before the
    # networks; kept at resets: only ("task", "new") resets the state
    primer = TensorDictPrimer({STATE_KEY: Unbounded((1, hidden))}, expand_specs=True,
                              keep_at_reset=True)
    return TransformedEnv(env, Compose(PreviousStepInputs(), primer))


class _Concat(nn.Module):
    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return torch.cat(inputs, dim=-1)


def make_models(config: RL2Config, env: Any) -> tuple[ProbabilisticActor, TensorDictSequential]:
    """A GRU over the observation and the previous action, reward and done, reset at a
    new task; a tanh-Gaussian policy head and a value head on its features (one GRU,
    shared)."""
    spec = env.action_spec
    for _ in env.batch_size:  # the spec of one env: the actor runs on any number of rows
        spec = spec[0]
    act_dim = spec.shape[-1]
    sizes = [env.observation_spec[key].shape[-1] for key in INPUT_KEYS]
    inputs = TensorDictModule(_Concat(), in_keys=list(INPUT_KEYS), out_keys=["rl2_input"])
    gru = GRUModule(input_size=sum(sizes), hidden_size=config.hidden,
                    in_keys=["rl2_input", STATE_KEY, NEW_TASK_KEY],
                    out_keys=["features", ("next", STATE_KEY)])
    policy_mlp = MLP(in_features=config.hidden, out_features=act_dim,
                     num_cells=[config.hidden], activation_class=nn.Tanh)
    value_mlp = MLP(in_features=config.hidden, out_features=1, num_cells=[config.hidden],
                    activation_class=nn.Tanh)
    orthogonal_init_(policy_mlp, 0.01)
    orthogonal_init_(value_mlp, 1.0)
    policy_head = TensorDictModule(
        nn.Sequential(policy_mlp, AddStateIndependentNormalScale(act_dim)),
        in_keys=["features"], out_keys=["loc", "scale"])
    actor = ProbabilisticActor(
        TensorDictSequential(inputs, gru, policy_head), in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": -MAX_ACTION, "high": MAX_ACTION}, return_log_prob=True,
        spec=spec)
    critic = TensorDictSequential(
        inputs, gru, TensorDictModule(value_mlp, in_keys=["features"], out_keys=["state_value"]))
    return actor, critic


def trial_returns(rollout: Any, episodes_per_trial: int) -> torch.Tensor:
    """The returns of the first ``episodes_per_trial`` episodes of each row of
    ``rollout`` (``[n, T]`` from a reset), ``[n, episodes_per_trial]`` (NaN where a row
    did not finish an episode)."""
    reward = rollout.get(("next", "reward")).squeeze(-1).double()
    done = rollout.get(("next", "done")).squeeze(-1)
    episode = done.long().cumsum(-1) - done.long()  # the episode each step belongs to
    out = torch.full((reward.shape[0], episodes_per_trial), float("nan"), dtype=torch.float64)
    for e in range(episodes_per_trial):
        finished = (done & (episode == e)).any(-1)
        total = (reward * (episode == e)).sum(-1)
        out[:, e] = torch.where(finished, total, torch.full_like(total, float("nan")))
    return out


def evaluate_trials(config: RL2Config, env: EnvBase, actor: nn.Module) -> dict[str, float]:
    """One trial per held-out task (deterministic actions): the mean return of the
    trial's first episode, of its last, and of all."""
    env.set_seed(config.eval_seed)  # the task tables start again at their first row
    steps = config.episodes_per_trial * config.max_steps  # enough for the trial's episodes
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        rollout = env.rollout(steps, actor, break_when_any_done=False)
    returns = trial_returns(rollout, config.episodes_per_trial)
    return {"eval_return": float(returns.mean()),
            "eval_first_return": float(returns[:, 0].mean()),
            "eval_last_return": float(returns[:, -1].mean())}


def _trial_as_the_unit(loss: ClipPPOLoss) -> None:
    # GAE cuts (and stops bootstrapping) at a trial's end, not at the episode ends inside it
    loss.set_keys(done=TRIAL_END_KEY, terminated=TRIAL_END_KEY)


# ---------------------------------------------------------------------------------- entry points
# train(config, run_dir=, progress=, resume=), parse_args(argv), main(argv), build_graph(argv)
_pipeline = PPOPipeline(NAME, RL2Config, make_models, __doc__, resume_episodes=False,
                        configure_loss=_trial_as_the_unit, evaluate=evaluate_trials,
                        loss_kwargs={"functional": False},
                        eval_columns=("eval_first_return", "eval_last_return"))
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph, run_identity = _pipeline.build_graph, _pipeline.run_identity
COLUMNS = _pipeline.columns

if __name__ == "__main__":
    sys.exit(main())
