"""PPO on Pendulum laid out as TorchRL's sota-implementations PPO (MuJoCo) script is:
ParallelEnv-free env builder with VecNorm-free normalisation (ObservationNorm initialised from
random steps), ClipPPOLoss with a GAE module run before the epochs, a replay buffer drained
without replacement, gradient clipping, an annealed learning rate, timeit and a CSV logger,
and a deterministic evaluation through the policy's actor."""

import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl._utils import logger as torchrl_logger
from torchrl._utils import timeit
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, TensorDictReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.envs import (
    ClipTransform,
    ExplorationType,
    ObservationNorm,
    RewardSum,
    StepCounter,
    TransformedEnv,
    set_exploration_type,
)
from torchrl.envs.libs.gym import GymEnv
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import ClipPPOLoss, group_optimizers
from torchrl.objectives.value.advantages import GAE
from torchrl.record import CSVLogger

FRAMES_PER_BATCH = 256
TOTAL_FRAMES = 1024
MINI_BATCH = 64
EPOCHS = 2
LR = 3e-4


def make_env():
    env = TransformedEnv(GymEnv("Pendulum-v1"))
    env.append_transform(ObservationNorm(in_keys=["observation"]))
    env.append_transform(StepCounter())
    env.append_transform(RewardSum())
    env.append_transform(ClipTransform(in_keys=["observation"], low=-10, high=10))
    env.transform[0].init_stats(num_iter=100, reduce_dim=0, cat_dim=0)
    return env


def make_models(env):
    num_outputs = env.action_spec_unbatched.shape[-1]
    policy_mlp = MLP(in_features=3, out_features=2 * num_outputs, num_cells=[64, 64],
                     activation_class=nn.Tanh)
    for layer in policy_mlp.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, 1.0)
            layer.bias.data.zero_()
    policy_module = TensorDictModule(
        nn.Sequential(policy_mlp, NormalParamExtractor()),
        in_keys=["observation"], out_keys=["loc", "scale"],
    )
    actor = ProbabilisticActor(
        policy_module,
        in_keys=["loc", "scale"],
        spec=env.full_action_spec_unbatched,
        distribution_class=TanhNormal,
        distribution_kwargs={"low": env.action_spec_unbatched.space.low,
                             "high": env.action_spec_unbatched.space.high, "tanh_loc": False},
        return_log_prob=True,
        default_interaction_type=ExplorationType.RANDOM,
    )
    critic = ValueOperator(
        MLP(in_features=3, out_features=1, num_cells=[64, 64], activation_class=nn.Tanh),
        in_keys=["observation"],
    )
    with torch.no_grad():
        td = env.fake_tensordict().expand(10)
        actor(td)
        critic(td)
    return actor, critic


def evaluate(actor, env):
    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        rollout = env.rollout(200, actor, auto_cast_to_device=True, break_when_any_done=True)
    return rollout["next", "episode_reward"][-1].mean().item(), rollout.numel()


def main():
    torch.manual_seed(0)
    env = make_env()
    actor, critic = make_models(env)
    collector = Collector(
        create_env_fn=make_env,
        policy=actor,
        frames_per_batch=FRAMES_PER_BATCH,
        total_frames=TOTAL_FRAMES,
        device="cpu",
        max_frames_per_traj=-1,
        compile_policy=False,
        cudagraph_policy=False,
    )
    sampler = SamplerWithoutReplacement()
    data_buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(FRAMES_PER_BATCH, compilable=False, device="cpu"),
        sampler=sampler,
        batch_size=MINI_BATCH,
        compilable=False,
    )
    adv_module = GAE(gamma=0.99, lmbda=0.95, value_network=critic, average_gae=False,
                     device="cpu", vectorized=True)
    loss_module = ClipPPOLoss(
        actor_network=actor,
        critic_network=critic,
        clip_epsilon=0.2,
        loss_critic_type="l2",
        entropy_coeff=0.0,
        critic_coeff=0.25,
        normalize_advantage=True,
    )
    actor_optim = torch.optim.Adam(actor.parameters(), lr=torch.tensor(LR), eps=1e-5)
    critic_optim = torch.optim.Adam(critic.parameters(), lr=torch.tensor(LR), eps=1e-5)
    optim = group_optimizers(actor_optim, critic_optim)
    del actor_optim, critic_optim
    logger = CSVLogger(exp_name="ppo", log_dir="logs")

    def update(batch, num_network_updates):
        optim.zero_grad(set_to_none=True)
        alpha = 1 - (num_network_updates / total_network_updates)
        for group in optim.param_groups:
            group["lr"] = LR * alpha
        num_network_updates += 1
        loss = loss_module(batch)
        critic_loss = loss["loss_critic"]
        actor_loss = loss["loss_objective"] + loss["loss_entropy"]
        total_loss = critic_loss + actor_loss
        total_loss.backward()
        torch.nn.utils.clip_grad_norm_(loss_module.parameters(), max_norm=0.5)
        optim.step()
        return loss.detach().set("alpha", torch.as_tensor(alpha)), num_network_updates

    num_mini_batches = FRAMES_PER_BATCH // MINI_BATCH
    total_network_updates = (TOTAL_FRAMES // FRAMES_PER_BATCH) * EPOCHS * num_mini_batches
    num_network_updates = torch.zeros((), dtype=torch.int64)
    collected_frames = 0
    batches = 0
    collector_iter = iter(collector)
    for _ in range(len(collector)):
        with timeit("collecting"):
            data = next(collector_iter)
        metrics_to_log = {}
        frames_in_batch = data.numel()
        collected_frames += frames_in_batch
        episode_rewards = data["next", "episode_reward"][data["next", "done"]]
        if len(episode_rewards) > 0:
            metrics_to_log["train/reward"] = episode_rewards.mean().item()
        with timeit("training"):
            for _ in range(EPOCHS):
                with torch.no_grad(), timeit("adv"):
                    data = adv_module(data)
                data_reshape = data.reshape(-1)
                data_buffer.extend(data_reshape)
                for batch in data_buffer:
                    with timeit("update"):
                        loss, num_network_updates = update(batch, num_network_updates)
        metrics_to_log["train/loss_objective"] = loss["loss_objective"].item()
        metrics_to_log["train/lr"] = loss["alpha"].item() * LR
        metrics_to_log.update(timeit.todict(prefix="time"))
        for key, value in metrics_to_log.items():
            logger.log_scalar(key, value, collected_frames)
        collector.update_policy_weights_()
        batches += 1
    reward, steps = evaluate(actor, make_env())
    torchrl_logger.info(f"eval reward {reward:.1f}")
    print(f"frames: {collected_frames}")
    print(f"batches: {batches}")
    print(f"updates: {int(num_network_updates)}")
    print(f"eval steps: {steps}")
    collector.shutdown()


if __name__ == "__main__":
    main()
