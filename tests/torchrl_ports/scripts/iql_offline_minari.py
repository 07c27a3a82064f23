"""Offline IQL on a Minari dataset, the way TorchRL's offline examples lay it out: a
MinariExperienceReplay over a local dataset (written here with minari, since nothing is
downloaded), IQLLoss with an actor, twin Q-networks and a value network, Adam,
SoftUpdate, then a deterministic evaluation rollout."""

import os
import tempfile

import gymnasium as gym
import minari
import numpy as np
import torch
from minari.data_collector.episode_buffer import EpisodeBuffer
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn, optim
from torchrl.data.datasets import MinariExperienceReplay
from torchrl.data.replay_buffers import SamplerWithoutReplacement
from torchrl.envs import DoubleToFloat, TransformedEnv
from torchrl.envs.libs.gym import GymEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import IQLLoss, SoftUpdate

torch.manual_seed(0)
work = tempfile.mkdtemp()
os.environ["MINARI_DATASETS_PATH"] = os.path.join(work, "minari")

# a small random-policy dataset of Pendulum-v1 (4 episodes of 200 steps), written with
# minari's create_dataset_from_buffers (its DataCollector needs jax)
raw_env = gym.make("Pendulum-v1")
rng = np.random.default_rng(0)
episodes = []
for episode in range(4):
    obs, _ = raw_env.reset(seed=episode)
    observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
    done = False
    while not done:
        action = rng.uniform(-2.0, 2.0, size=(1,)).astype(np.float32)
        obs, reward, terminated, truncated, _ = raw_env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
        terminations.append(terminated)
        truncations.append(truncated)
        done = terminated or truncated
    episodes.append(EpisodeBuffer(
        id=episode, seed=episode, observations=np.stack(observations),
        actions=np.stack(actions), rewards=rewards, terminations=terminations,
        truncations=truncations, infos={}))
minari.create_dataset_from_buffers("pendulum/random-v0", episodes, env=raw_env,
                                   algorithm_name="uniform random")
raw_env.close()

replay_buffer = MinariExperienceReplay(
    "pendulum/random-v0",
    batch_size=64,
    root=os.path.join(work, "torchrl"),
    download=True,
    load_from_local_minari=True,
    sampler=SamplerWithoutReplacement(drop_last=True),
)
print("transitions", len(replay_buffer))

env = TransformedEnv(GymEnv("Pendulum-v1"), DoubleToFloat())
obs_dim = env.observation_spec["observation"].shape[-1]
act_dim = env.action_spec.shape[-1]
action_spec = env.action_spec_unbatched if hasattr(env, "action_spec_unbatched") \
    else env.action_spec

actor_net = nn.Sequential(
    MLP(in_features=obs_dim, out_features=2 * act_dim, num_cells=[64, 64],
        activation_class=nn.ReLU),
    NormalParamExtractor(),
)
actor = ProbabilisticActor(
    TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
    in_keys=["loc", "scale"],
    spec=action_spec,
    distribution_class=TanhNormal,
    distribution_kwargs={"low": action_spec.space.low, "high": action_spec.space.high,
                         "tanh_loc": False},
    default_interaction_type=ExplorationType.RANDOM,
)
qvalue = ValueOperator(
    MLP(in_features=obs_dim + act_dim, out_features=1, num_cells=[64, 64],
        activation_class=nn.ReLU),
    in_keys=["observation", "action"],
)
value = ValueOperator(
    MLP(in_features=obs_dim, out_features=1, num_cells=[64, 64], activation_class=nn.ReLU),
    in_keys=["observation"],
)
with torch.no_grad():
    td = env.reset()
    actor(td)
    qvalue(td)
    value(td)

loss_module = IQLLoss(actor, qvalue, value_network=value, num_qvalue_nets=2,
                      temperature=3.0, expectile=0.7, loss_function="l2")
loss_module.make_value_estimator(gamma=0.99)
target_updater = SoftUpdate(loss_module, tau=0.005)
optimizer = optim.Adam(loss_module.parameters(), lr=3e-4)

losses = []
for _ in range(60):
    batch = replay_buffer.sample()
    out = loss_module(batch)
    loss = out["loss_actor"] + out["loss_qvalue"] + out["loss_value"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    target_updater.step()
    losses.append(loss.item())
assert all(np.isfinite(losses)), losses
print("loss keys", sorted(k for k in out.keys() if k.startswith("loss_")))

with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
    rollout = env.rollout(200, actor)
print("eval steps", rollout.shape[0], "return", round(rollout["next", "reward"].sum().item(), 1))
env.close()
