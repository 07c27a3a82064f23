"""DQN on CartPole: a Collector with init_random_frames, a replay buffer, a TensorBoard logger.

Written the way TorchRL's DQN docs build it: a QValueActor on a lazy MLP, an e-greedy
exploration module annealed by the frames collected, DQNLoss with a target network kept by
SoftUpdate.
"""

import torch
from tensordict.nn import TensorDictSequential
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.envs import GymEnv, StepCounter, TransformedEnv
from torchrl.modules import MLP, EGreedyModule, QValueActor
from torchrl.objectives import DQNLoss, SoftUpdate
from torchrl.record import TensorboardLogger

torch.manual_seed(0)
INIT_RANDOM_FRAMES = 1_000

env = TransformedEnv(GymEnv("CartPole-v1"), StepCounter())
env.set_seed(0)

value_mlp = MLP(out_features=env.action_spec.shape[-1], num_cells=[64, 64])
value_net = QValueActor(value_mlp, in_keys=["observation"], spec=env.action_spec)
value_net(env.reset())  # initialise the lazy layers
exploration = EGreedyModule(env.action_spec, annealing_num_steps=4_000, eps_init=1.0,
                            eps_end=0.05)
policy = TensorDictSequential(value_net, exploration)

collector = Collector(env, policy, frames_per_batch=100, total_frames=6_000,
                      init_random_frames=INIT_RANDOM_FRAMES)
buffer = ReplayBuffer(storage=LazyTensorStorage(10_000))

loss_module = DQNLoss(value_network=value_net, action_space=env.action_spec, delay_value=True)
loss_module.make_value_estimator(gamma=0.99)
optimizer = torch.optim.Adam(loss_module.parameters(), lr=1e-3)
target_updater = SoftUpdate(loss_module, eps=0.95)
logger = TensorboardLogger(exp_name="dqn_cartpole", log_dir="logs")

frames = 0
longest = 0
for data in collector:
    buffer.extend(data)
    frames += data.numel()
    lengths = data["next", "step_count"][data["next", "done"]]
    if lengths.numel():
        longest = max(longest, int(lengths.max()))
        logger.log_scalar("episode_length", lengths.float().mean().item(), step=frames)
    if frames < INIT_RANDOM_FRAMES:
        continue
    for _ in range(10):
        sample = buffer.sample(128)
        loss = loss_module(sample)
        loss["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        target_updater.step()
    exploration.step(data.numel())
    collector.update_policy_weights_()
    logger.log_scalar("loss", loss["loss"].item(), step=frames)
    logger.log_scalar("epsilon", exploration.eps.item(), step=frames)

collector.shutdown()
print(f"frames: {frames}")
print(f"longest episode: {longest}")
