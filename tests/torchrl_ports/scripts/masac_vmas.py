"""Multi-agent SAC on VMAS Navigation, written against TorchRL 0.14's documented API (the
layout of its multi-agent SAC example: a MultiAgentMLP Gaussian policy, a centralised
Q-network on observation and action per agent, SACLoss with the group's keys and the
unbatched action spec, TD(0), a soft target update, a replay buffer). Small budget."""

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule, TensorDictSequential
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, SamplerWithoutReplacement, TensorDictReplayBuffer
from torchrl.envs import RewardSum, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.modules import MultiAgentMLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import SACLoss, SoftUpdate, ValueEstimators

torch.manual_seed(0)
device = "cpu"
max_steps, num_envs, n_agents = 20, 4, 3
frames_per_batch = max_steps * num_envs
n_iters = 3
num_epochs, minibatch_size = 2, 40

env = VmasEnv(scenario="navigation", num_envs=num_envs, continuous_actions=True,
              max_steps=max_steps, device=device, seed=0, n_agents=n_agents)
env = TransformedEnv(env, RewardSum(in_keys=[env.reward_key],
                                    out_keys=[("agents", "episode_reward")]))
n_obs = env.observation_spec["agents", "observation"].shape[-1]
n_act = env.full_action_spec_unbatched[env.action_key].shape[-1]

actor_net = torch.nn.Sequential(
    MultiAgentMLP(n_agent_inputs=n_obs, n_agent_outputs=2 * n_act, n_agents=n_agents,
                  centralized=False, share_params=True, device=device, depth=2, num_cells=32,
                  activation_class=torch.nn.Tanh),
    NormalParamExtractor(),
)
policy = ProbabilisticActor(
    module=TensorDictModule(actor_net, in_keys=[("agents", "observation")],
                            out_keys=[("agents", "loc"), ("agents", "scale")]),
    spec=env.full_action_spec_unbatched,
    in_keys=[("agents", "loc"), ("agents", "scale")],
    out_keys=[env.action_key],
    distribution_class=TanhNormal,
    distribution_kwargs={
        "low": env.full_action_spec_unbatched[env.action_key].space.low,
        "high": env.full_action_spec_unbatched[env.action_key].space.high,
    },
    return_log_prob=True,
)
cat_module = TensorDictModule(lambda obs, action: torch.cat([obs, action], dim=-1),
                              in_keys=[("agents", "observation"), ("agents", "action")],
                              out_keys=[("agents", "obs_action")])
value_module = TensorDictSequential(cat_module, ValueOperator(
    module=MultiAgentMLP(n_agent_inputs=n_obs + n_act, n_agent_outputs=1, n_agents=n_agents,
                         centralized=True, share_params=True, device=device, depth=2,
                         num_cells=32, activation_class=torch.nn.Tanh),
    in_keys=[("agents", "obs_action")], out_keys=[("agents", "state_action_value")]))

collector = Collector(env, policy, device=device, storing_device=device,
                      frames_per_batch=frames_per_batch,
                      total_frames=frames_per_batch * n_iters)
replay_buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(1000, device=device),
                                       sampler=SamplerWithoutReplacement(),
                                       batch_size=minibatch_size)
loss_module = SACLoss(actor_network=policy, qvalue_network=value_module, delay_qvalue=True,
                      action_spec=env.full_action_spec_unbatched)
loss_module.set_keys(state_action_value=("agents", "state_action_value"),
                     action=env.action_key, reward=env.reward_key,
                     done=("agents", "done"), terminated=("agents", "terminated"))
loss_module.make_value_estimator(ValueEstimators.TD0, gamma=0.99)
target_net_updater = SoftUpdate(loss_module, eps=0.995)
optim = torch.optim.Adam(loss_module.parameters(), 3e-4)

updates = 0
for i, data in enumerate(collector):
    for key in ("done", "terminated"):
        data.set(("next", "agents", key), data.get(("next", key)).unsqueeze(-1).expand(
            data.get_item_shape(("next", env.reward_key))))
    replay_buffer.extend(data.reshape(-1))
    for _ in range(num_epochs):
        for _ in range(frames_per_batch // minibatch_size):
            loss_vals = loss_module(replay_buffer.sample())
            loss = loss_vals["loss_actor"] + loss_vals["loss_alpha"] + loss_vals["loss_qvalue"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(loss_module.parameters(), 1.0)
            optim.step()
            optim.zero_grad()
            target_net_updater.step()
            updates += 1
    collector.update_policy_weights_()
    done = data.get(("next", "agents", "done"))
    reward = data.get(("next", "agents", "episode_reward"))[done].mean().item()
    print(f"iteration {i}: episode_reward_mean {reward:.3f} alpha {loss_vals['alpha'].item():.4f}")

collector.shutdown()
print("updates:", updates)
print("target entropy:", float(loss_module.target_entropy))
