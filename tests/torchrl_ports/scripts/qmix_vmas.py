"""QMIX on VMAS Navigation with discrete actions, written against TorchRL 0.14's documented
multi-agent API (the layout of its QMIX/VDN example: a shared MultiAgentMLP Q-network, a
QValueModule writing each agent's action and chosen value, epsilon-greedy exploration on the
group's action, a QMixer over the chosen values, QMixerLoss with the group's keys, the team
reward as the mean of the agents'). Small budget: 3 iterations."""

import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.data.replay_buffers.storages import LazyTensorStorage
from torchrl.envs import RewardSum, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.modules import EGreedyModule, QValueModule, SafeSequential
from torchrl.modules.models.multiagent import MultiAgentMLP, QMixer
from torchrl.objectives import SoftUpdate, ValueEstimators
from torchrl.objectives.multiagent.qmixer import QMixerLoss

torch.manual_seed(0)
num_envs = 6
max_steps = 40
frames_per_batch = num_envs * max_steps
n_iters = 3
total_frames = frames_per_batch * n_iters
minibatch_size = 60

env = VmasEnv(
    scenario="navigation",
    num_envs=num_envs,
    continuous_actions=False,
    categorical_actions=True,
    max_steps=max_steps,
    device="cpu",
    n_agents=2,
    seed=0,
)
env = TransformedEnv(
    env,
    RewardSum(in_keys=[env.reward_key], out_keys=[("agents", "episode_reward")]),
)
n_actions = env.full_action_spec["agents", "action"].space.n
print("actions:", n_actions, "agents:", env.n_agents)

net = MultiAgentMLP(
    n_agent_inputs=env.observation_spec["agents", "observation"].shape[-1],
    n_agent_outputs=n_actions,
    n_agents=env.n_agents,
    centralized=False,
    share_params=True,
    device="cpu",
    depth=2,
    num_cells=64,
    activation_class=nn.Tanh,
)
module = TensorDictModule(net, in_keys=[("agents", "observation")], out_keys=[("agents", "action_value")])
value_module = QValueModule(
    action_value_key=("agents", "action_value"),
    out_keys=[env.action_key, ("agents", "action_value"), ("agents", "chosen_action_value")],
    spec=env.full_action_spec_unbatched,
    action_space=None,
)
qnet = SafeSequential(module, value_module)
qnet_explore = TensorDictSequential(
    qnet,
    EGreedyModule(
        eps_init=0.3,
        eps_end=0,
        annealing_num_steps=int(total_frames * (1 / 2)),
        action_key=env.action_key,
        spec=env.full_action_spec_unbatched,
    ),
)
mixer = TensorDictModule(
    module=QMixer(
        state_shape=env.observation_spec_unbatched["agents", "observation"].shape,
        mixing_embed_dim=16,
        n_agents=env.n_agents,
        device="cpu",
    ),
    in_keys=[("agents", "chosen_action_value"), ("agents", "observation")],
    out_keys=["chosen_action_value"],
)

collector = Collector(env, qnet_explore, device="cpu", storing_device="cpu",
                              frames_per_batch=frames_per_batch, total_frames=total_frames)
replay_buffer = TensorDictReplayBuffer(
    storage=LazyTensorStorage(frames_per_batch, device="cpu"),
    sampler=SamplerWithoutReplacement(),
    batch_size=minibatch_size,
)
loss_module = QMixerLoss(qnet, mixer, delay_value=True)
loss_module.set_keys(
    action_value=("agents", "action_value"),
    local_value=("agents", "chosen_action_value"),
    global_value="chosen_action_value",
    action=env.action_key,
)
loss_module.make_value_estimator(ValueEstimators.TD0, gamma=0.9)
target_net_updater = SoftUpdate(loss_module, eps=1 - 0.005)
optim = torch.optim.Adam(loss_module.parameters(), 5e-4)

losses = []
for i, tensordict_data in enumerate(collector):
    current_frames = tensordict_data.numel()
    # the team reward: the mean of the agents'
    tensordict_data.set(("next", "reward"), tensordict_data.get(("next", env.reward_key)).mean(-2))
    del tensordict_data["next", env.reward_key]
    tensordict_data.set(
        ("next", "episode_reward"),
        tensordict_data.get(("next", "agents", "episode_reward")).mean(-2),
    )
    del tensordict_data["next", "agents", "episode_reward"]
    replay_buffer.extend(tensordict_data.reshape(-1))
    for _ in range(frames_per_batch // minibatch_size):
        subdata = replay_buffer.sample()
        loss_vals = loss_module(subdata)
        loss_value = loss_vals["loss"]
        loss_value.backward()
        torch.nn.utils.clip_grad_norm_(loss_module.parameters(), 10.0)
        optim.step()
        optim.zero_grad()
        target_net_updater.step()
        losses.append(loss_value.item())
    qnet_explore[1].step(frames=current_frames)
    collector.update_policy_weights_()
    print(f"iteration {i}: loss {losses[-1]:.4f} eps {float(qnet_explore[1].eps):.3f}")

collector.shutdown()
print("updates:", len(losses))
print("chosen:", tuple(tensordict_data["agents", "chosen_action_value"].shape))
