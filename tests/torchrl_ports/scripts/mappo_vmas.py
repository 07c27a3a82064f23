"""MAPPO on VMAS Navigation, written against TorchRL 0.14's documented multi-agent API (the
layout of its multi-agent PPO tutorial: a VmasEnv group "agents", MultiAgentMLP policy and
centralised critic, ClipPPOLoss with the group's keys, GAE with the shared done expanded to
the agents, a collector and a minibatch buffer). Small budget: 3 iterations."""

import torch
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor
from torchrl.collectors import Collector
from torchrl.data.replay_buffers import ReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.data.replay_buffers.storages import LazyTensorStorage
from torchrl.envs import RewardSum, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.envs.utils import check_env_specs
from torchrl.modules import MultiAgentMLP, ProbabilisticActor, TanhNormal
from torchrl.objectives import ClipPPOLoss, ValueEstimators

torch.manual_seed(0)
device = "cpu"
vmas_device = "cpu"

num_envs = 8
max_steps = 50
frames_per_batch = num_envs * max_steps
n_iters = 3
total_frames = frames_per_batch * n_iters
num_epochs = 2
minibatch_size = 100

base_env = VmasEnv(
    scenario="navigation",
    num_envs=num_envs,
    continuous_actions=True,
    max_steps=max_steps,
    device=vmas_device,
    n_agents=3,
)
env = TransformedEnv(
    base_env,
    RewardSum(in_keys=[base_env.reward_key], out_keys=[("agents", "episode_reward")]),
)
check_env_specs(env)
print("group_map:", env.group_map)
print("action_key:", env.action_key, "reward_key:", env.reward_key)

n_obs = env.observation_spec["agents", "observation"].shape[-1]
n_act = env.full_action_spec[env.action_key].shape[-1]

actor_net = torch.nn.Sequential(
    MultiAgentMLP(
        n_agent_inputs=n_obs,
        n_agent_outputs=2 * n_act,
        n_agents=env.n_agents,
        centralized=False,
        share_params=True,
        device=device,
        depth=2,
        num_cells=64,
        activation_class=torch.nn.Tanh,
    ),
    NormalParamExtractor(),
)
actor_module = TensorDictModule(
    actor_net, in_keys=[("agents", "observation")], out_keys=[("agents", "loc"), ("agents", "scale")]
)
policy = ProbabilisticActor(
    module=actor_module,
    spec=env.action_spec_unbatched,
    in_keys=[("agents", "loc"), ("agents", "scale")],
    out_keys=[env.action_key],
    distribution_class=TanhNormal,
    distribution_kwargs={
        "low": env.full_action_spec_unbatched[env.action_key].space.low,
        "high": env.full_action_spec_unbatched[env.action_key].space.high,
    },
    return_log_prob=True,
)

critic_net = MultiAgentMLP(
    n_agent_inputs=n_obs,
    n_agent_outputs=1,
    n_agents=env.n_agents,
    centralized=True,  # MAPPO: every agent's value reads all observations
    share_params=True,
    device=device,
    depth=2,
    num_cells=64,
    activation_class=torch.nn.Tanh,
)
critic = TensorDictModule(
    critic_net, in_keys=[("agents", "observation")], out_keys=[("agents", "state_value")]
)

collector = Collector(
    env,
    policy,
    device=vmas_device,
    storing_device=device,
    frames_per_batch=frames_per_batch,
    total_frames=total_frames,
)
replay_buffer = ReplayBuffer(
    storage=LazyTensorStorage(frames_per_batch, device=device),
    sampler=SamplerWithoutReplacement(),
    batch_size=minibatch_size,
)

loss_module = ClipPPOLoss(
    actor_network=policy,
    critic_network=critic,
    clip_epsilon=0.2,
    entropy_coeff=1e-4,
    normalize_advantage=False,
)
loss_module.set_keys(
    reward=env.reward_key,
    action=env.action_key,
    value=("agents", "state_value"),
    done=("agents", "done"),
    terminated=("agents", "terminated"),
)
loss_module.make_value_estimator(ValueEstimators.GAE, gamma=0.99, lmbda=0.9)
GAE = loss_module.value_estimator
optim = torch.optim.Adam(loss_module.parameters(), 3e-4)

rewards = []
for i, tensordict_data in enumerate(collector):
    # the env's done is shared by the agents: expand it to each agent, as the reward is
    for key in ("done", "terminated"):
        tensordict_data.set(
            ("next", "agents", key),
            tensordict_data.get(("next", key))
            .unsqueeze(-1)
            .expand(tensordict_data.get_item_shape(("next", env.reward_key))),
        )
    with torch.no_grad():
        GAE(
            tensordict_data,
            params=loss_module.critic_network_params,
            target_params=loss_module.target_critic_network_params,
        )
    replay_buffer.extend(tensordict_data.reshape(-1))
    for _ in range(num_epochs):
        for _ in range(frames_per_batch // minibatch_size):
            subdata = replay_buffer.sample()
            loss_vals = loss_module(subdata)
            loss_value = loss_vals["loss_objective"] + loss_vals["loss_critic"] + loss_vals["loss_entropy"]
            loss_value.backward()
            torch.nn.utils.clip_grad_norm_(loss_module.parameters(), 1.0)
            optim.step()
            optim.zero_grad()
    collector.update_policy_weights_()
    done = tensordict_data.get(("next", "agents", "done"))
    episode_reward_mean = tensordict_data.get(("next", "agents", "episode_reward"))[done].mean().item()
    rewards.append(episode_reward_mean)
    print(f"iteration {i}: episode_reward_mean {episode_reward_mean:.3f}")

collector.shutdown()
print("batch:", tuple(tensordict_data.batch_size))
print("advantage:", tuple(tensordict_data["advantage"].shape))
print("iterations:", len(rewards))
