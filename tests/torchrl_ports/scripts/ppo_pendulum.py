"""PPO on Pendulum: a Collector with split_trajs=True, GAE, ClipPPOLoss(entropy_coeff, critic_coeff).

Written the way TorchRL's PPO tutorial builds it: normalised observations, a tanh-normal
actor and a value network, advantages computed on each batch of padded trajectories, then
epochs of minibatch updates on the valid steps.
"""

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data.replay_buffers import ReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.data.replay_buffers.storages import LazyTensorStorage
from torchrl.envs import Compose, DoubleToFloat, ObservationNorm, StepCounter, TransformedEnv
from torchrl.envs.libs.gym import GymEnv
from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type
from torchrl.modules import ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE

torch.manual_seed(0)
frames_per_batch = 1000
total_frames = 3000
num_epochs = 3
sub_batch_size = 64

env = TransformedEnv(
    GymEnv("Pendulum-v1"),
    Compose(ObservationNorm(in_keys=["observation"]), DoubleToFloat(), StepCounter()),
)
env.transform[0].init_stats(num_iter=500, reduce_dim=0, cat_dim=0)
env.set_seed(0)
check_env_specs(env)

actor_net = nn.Sequential(
    nn.LazyLinear(64), nn.Tanh(), nn.LazyLinear(64), nn.Tanh(),
    nn.LazyLinear(2 * env.action_spec.shape[-1]), NormalParamExtractor(),
)
policy_module = ProbabilisticActor(
    module=TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
    spec=env.action_spec,
    in_keys=["loc", "scale"],
    distribution_class=TanhNormal,
    distribution_kwargs={"low": env.action_spec.space.low, "high": env.action_spec.space.high},
    return_log_prob=True,
)
value_net = nn.Sequential(nn.LazyLinear(64), nn.Tanh(), nn.LazyLinear(64), nn.Tanh(),
                          nn.LazyLinear(1))
value_module = ValueOperator(module=value_net, in_keys=["observation"])
policy_module(env.reset())
value_module(env.reset())

collector = Collector(env, policy_module, frames_per_batch=frames_per_batch,
                      total_frames=total_frames, split_trajs=True)
replay_buffer = ReplayBuffer(storage=LazyTensorStorage(max_size=frames_per_batch),
                             sampler=SamplerWithoutReplacement())
advantage_module = GAE(gamma=0.99, lmbda=0.95, value_network=value_module, average_gae=True)
loss_module = ClipPPOLoss(actor_network=policy_module, critic_network=value_module,
                          clip_epsilon=0.2, entropy_bonus=True, entropy_coeff=1e-4,
                          critic_coeff=1.0, loss_critic_type="smooth_l1")
optim = torch.optim.Adam(loss_module.parameters(), 3e-4)

returns = []
for tensordict_data in collector:
    # split_trajs: one row per trajectory, padded; the mask marks the real steps
    assert tensordict_data.ndim == 2
    mask = tensordict_data["collector", "mask"]
    for _ in range(num_epochs):
        with torch.no_grad():
            advantage_module(tensordict_data)
        replay_buffer.extend(tensordict_data[mask].cpu())
        for _ in range(frames_per_batch // sub_batch_size):
            subdata = replay_buffer.sample(sub_batch_size)
            loss_vals = loss_module(subdata)
            loss_value = (loss_vals["loss_objective"] + loss_vals["loss_critic"]
                          + loss_vals["loss_entropy"])
            loss_value.backward()
            torch.nn.utils.clip_grad_norm_(loss_module.parameters(), 1.0)
            optim.step()
            optim.zero_grad()
    returns.append(tensordict_data["next", "reward"][mask].mean().item())
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        eval_rollout = env.rollout(200, policy_module)
    collector.update_policy_weights_()

collector.shutdown()
print(f"batches: {len(returns)}")
print(f"mean reward first/last: {returns[0]:.3f} {returns[-1]:.3f}")
print(f"eval steps: {eval_rollout.batch_size[0]}")
