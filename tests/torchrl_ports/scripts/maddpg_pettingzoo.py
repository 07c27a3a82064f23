"""Competitive MADDPG on PettingZoo's MPE simple_tag (or VMAS's, ``use_vmas = True``), written against TorchRL 0.14's
documented multi-agent API (the layout of its competitive DDPG tutorial: two groups, a
deterministic policy and a centralised critic per group, one collector for both, a replay
buffer, a DDPGLoss, optimisers and a target updater per group; the evaders stop training
midway). Small budget: 4 iterations."""

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torchrl.collectors import Collector
from torchrl.data import LazyMemmapStorage, RandomSampler, ReplayBuffer
from torchrl.envs import PettingZooWrapper, RewardSum, TransformedEnv, VmasEnv, check_env_specs
from torchrl.modules import (
    AdditiveGaussianModule,
    MultiAgentMLP,
    ProbabilisticActor,
    TanhDelta,
)
from torchrl.objectives import DDPGLoss, SoftUpdate, ValueEstimators

seed = 0
torch.manual_seed(seed)
device = "cpu"
frames_per_batch = 100
n_iters = 4
total_frames = frames_per_batch * n_iters
iteration_when_stop_training_evaders = n_iters // 2
memory_size = 1_000
n_optimiser_steps = 4
train_batch_size = 32
lr = 3e-4
max_grad_norm = 1.0
gamma = 0.99
polyak_tau = 0.005
max_steps = 25

n_chasers, n_evaders, n_obstacles = 2, 1, 2
use_vmas = False  # the tutorial's switch: VMAS's simple_tag, vectorised

if not use_vmas:
    # MPE now lives in the mpe2 package (TorchRL 0.14.1's PettingZooEnv(task=...) still
    # imports pettingzoo.mpe): the env is built here and wrapped
    from mpe2 import simple_tag_v3

    base_env = PettingZooWrapper(
        simple_tag_v3.parallel_env(
            continuous_actions=True,
            num_good=n_evaders,
            num_adversaries=n_chasers,
            num_obstacles=n_obstacles,
            max_cycles=max_steps,
        ),
        seed=seed,
    )
else:
    base_env = VmasEnv(
        scenario="simple_tag",
        num_envs=frames_per_batch // max_steps,
        continuous_actions=True,
        max_steps=max_steps,
        device=device,
        seed=seed,
        num_good_agents=n_evaders,
        num_adversaries=n_chasers,
        num_landmarks=n_obstacles,
    )
print("group_map:", base_env.group_map)
env = TransformedEnv(
    base_env,
    RewardSum(
        in_keys=base_env.reward_keys,
        reset_keys=["_reset"] * len(base_env.group_map.keys()),
    ),
)
check_env_specs(env)

policies = {}
for group, agents in env.group_map.items():
    net = MultiAgentMLP(
        n_agent_inputs=env.observation_spec[group, "observation"].shape[-1],
        n_agent_outputs=env.full_action_spec[group, "action"].shape[-1],
        n_agents=len(agents),
        centralized=False,
        share_params=True,
        device=device,
        depth=2,
        num_cells=64,
        activation_class=torch.nn.Tanh,
    )
    module = TensorDictModule(net, in_keys=[(group, "observation")], out_keys=[(group, "param")])
    policies[group] = ProbabilisticActor(
        module=module,
        spec=env.full_action_spec_unbatched[group, "action"],
        in_keys=[(group, "param")],
        out_keys=[(group, "action")],
        distribution_class=TanhDelta,
        distribution_kwargs={
            "low": env.full_action_spec_unbatched[group, "action"].space.low,
            "high": env.full_action_spec_unbatched[group, "action"].space.high,
        },
        return_log_prob=False,
    )

exploration_policies = {}
for group in env.group_map:
    exploration_policies[group] = TensorDictSequential(
        policies[group],
        AdditiveGaussianModule(
            spec=policies[group].spec,
            annealing_num_steps=total_frames // 2,
            action_key=(group, "action"),
            sigma_init=0.9,
            sigma_end=0.1,
        ),
    )


class Concat(torch.nn.Module):
    def forward(self, obs, action):
        return torch.cat([obs, action], dim=-1)


critics = {}
for group, agents in env.group_map.items():
    cat_module = TensorDictModule(
        Concat(), in_keys=[(group, "observation"), (group, "action")], out_keys=[(group, "obs_action")]
    )
    critic_module = TensorDictModule(
        MultiAgentMLP(
            n_agent_inputs=env.observation_spec[group, "observation"].shape[-1]
            + env.full_action_spec[group, "action"].shape[-1],
            n_agent_outputs=1,
            n_agents=len(agents),
            centralized=True,  # MADDPG
            share_params=True,
            device=device,
            depth=2,
            num_cells=64,
            activation_class=torch.nn.Tanh,
        ),
        in_keys=[(group, "obs_action")],
        out_keys=[(group, "state_action_value")],
    )
    critics[group] = TensorDictSequential(cat_module, critic_module)

reset_td = env.reset()
for group in env.group_map:
    value = critics[group](policies[group](reset_td))[group, "state_action_value"]
    print(f"{group} values: {tuple(value.shape)}")

agents_exploration_policy = TensorDictSequential(*exploration_policies.values())
collector = Collector(
    env,
    agents_exploration_policy,
    device=device,
    frames_per_batch=frames_per_batch,
    total_frames=total_frames,
)

replay_buffers = {}
for group in env.group_map:
    replay_buffers[group] = ReplayBuffer(
        storage=LazyMemmapStorage(memory_size, device=device),
        sampler=RandomSampler(),
        batch_size=train_batch_size,
    )

losses, target_updaters, optimisers = {}, {}, {}
for group in env.group_map:
    loss_module = DDPGLoss(
        actor_network=policies[group], value_network=critics[group], delay_value=True,
        loss_function="l2",
    )
    loss_module.set_keys(
        state_action_value=(group, "state_action_value"),
        reward=(group, "reward"),
        done=(group, "done"),
        terminated=(group, "terminated"),
    )
    loss_module.make_value_estimator(ValueEstimators.TD0, gamma=gamma)
    losses[group] = loss_module
    target_updaters[group] = SoftUpdate(loss_module, tau=polyak_tau)
    optimisers[group] = {
        "loss_actor": torch.optim.Adam(loss_module.actor_network_params.flatten_keys().values(), lr=lr),
        "loss_value": torch.optim.Adam(loss_module.value_network_params.flatten_keys().values(), lr=lr),
    }


def process_batch(batch):
    """Expand the root done flags to a group's agents where the env gives none per agent."""
    for group in env.group_map:
        keys = list(batch.keys(True, True))
        group_shape = batch.get_item_shape(group)
        for flag in ("done", "terminated"):
            nested = ("next", group, flag)
            if nested not in keys:
                batch.set(nested, batch.get(("next", flag)).unsqueeze(-1).expand((*group_shape, 1)))
    return batch


train_group_map = dict(env.group_map)
trained = {group: 0 for group in env.group_map}
for iteration, batch in enumerate(collector):
    current_frames = batch.numel()
    batch = process_batch(batch)
    for group in train_group_map:
        group_batch = batch.exclude(
            *[key for other in env.group_map if other != group for key in (other, ("next", other))]
        )
        replay_buffers[group].extend(group_batch.reshape(-1))
        for _ in range(n_optimiser_steps):
            subdata = replay_buffers[group].sample()
            loss_vals = losses[group](subdata)
            for loss_name in ("loss_actor", "loss_value"):
                loss = loss_vals[loss_name]
                optimiser = optimisers[group][loss_name]
                loss.backward()
                params = optimiser.param_groups[0]["params"]
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
                optimiser.step()
                optimiser.zero_grad()
            target_updaters[group].step()
            trained[group] += 1
        exploration_policies[group][-1].step(current_frames)
    if iteration == iteration_when_stop_training_evaders:
        del train_group_map["agent"]
    for group in env.group_map:
        episode_reward = batch.get(("next", group, "episode_reward"))
        done = batch.get(("next", group, "done"))
        if done.any():
            print(f"iteration {iteration} {group} episode_reward {episode_reward[done].mean().item():.3f}")

collector.shutdown()
print("updates:", trained)
print("sigma:", {g: round(float(p[-1].sigma), 3) for g, p in exploration_policies.items()})
