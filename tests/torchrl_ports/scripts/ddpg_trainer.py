"""DDPG on Pendulum with TorchRL's Trainer and its hooks, as TorchRL's trainer docs put it
together: a Collector, a replay-buffer hook, an optimizer hook, target-network and
policy-weight updates, logged scalars and a validation recorder, to a CSVLogger."""

import torch
from tensordict.nn import TensorDictSequential
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.envs import StepCounter, TransformedEnv
from torchrl.envs.libs.gym import GymEnv
from torchrl.envs.utils import ExplorationType
from torchrl.modules import MLP, Actor, AdditiveGaussianModule, ValueOperator
from torchrl.objectives import DDPGLoss, SoftUpdate
from torchrl.record import CSVLogger
from torchrl.trainers import (
    CountFramesLog,
    LogScalar,
    LogValidationReward,
    ReplayBufferTrainer,
    TargetNetUpdaterHook,
    Trainer,
    UpdateWeights,
)

TOTAL_FRAMES = 400
FRAMES_PER_BATCH = 50

torch.manual_seed(0)
env = GymEnv("Pendulum-v1")
actor = Actor(MLP(in_features=3, out_features=1, num_cells=[32, 32]), spec=env.action_spec)
value = ValueOperator(MLP(in_features=4, out_features=1, num_cells=[32, 32]),
                      in_keys=["observation", "action"])
exploration_policy = TensorDictSequential(
    actor, AdditiveGaussianModule(spec=env.action_spec, annealing_num_steps=TOTAL_FRAMES)
)
collector = Collector(lambda: GymEnv("Pendulum-v1"), exploration_policy,
                      frames_per_batch=FRAMES_PER_BATCH, total_frames=TOTAL_FRAMES)
loss_module = DDPGLoss(actor_network=actor, value_network=value)
target_net_updater = SoftUpdate(loss_module, eps=0.99)
optimizer = torch.optim.Adam(loss_module.parameters(), lr=1e-3)
logger = CSVLogger(exp_name="ddpg", log_dir="logs")

trainer = Trainer(
    collector=collector,
    total_frames=TOTAL_FRAMES,
    frame_skip=1,
    optim_steps_per_batch=8,
    loss_module=loss_module,
    optimizer=optimizer,
    logger=logger,
    clip_norm=10.0,
    progress_bar=False,
    seed=0,
    log_interval=FRAMES_PER_BATCH,
    save_trainer_interval=2 * FRAMES_PER_BATCH,
    save_trainer_file="trainer.pt",
)
replay_buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(10_000))
ReplayBufferTrainer(replay_buffer, batch_size=64, flatten_tensordicts=True).register(trainer)
TargetNetUpdaterHook(target_net_updater).register(trainer, "target_net_updater")
UpdateWeights(trainer.collector, update_weights_interval=1).register(trainer)
LogScalar(("next", "reward"), "r_training", log_pbar=True).register(trainer)
CountFramesLog(frame_skip=1).register(trainer)
LogValidationReward(
    record_interval=4,
    record_frames=50,
    policy_exploration=actor,
    environment=TransformedEnv(GymEnv("Pendulum-v1"), StepCounter()),
    exploration_type=ExplorationType.DETERMINISTIC,
).register(trainer)
trainer.train()
print(f"frames: {trainer.collected_frames}")
print(f"buffer: {len(replay_buffer)}")
