"""SAC on Pendulum laid out as TorchRL's sota-implementations scripts are: utils-style
builders, a prioritized memmap replay buffer, compile_with_warmup'd update, the collector's
compile_policy / cudagraph_policy arguments (off), timeit around every phase and its
figures logged, group_optimizers, and a deterministic evaluation rollout."""

import tempfile

import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch import nn
from torchrl._utils import compile_with_warmup, timeit
from torchrl._utils import logger as torchrl_logger
from torchrl.collectors import Collector
from torchrl.data import (
    LazyMemmapStorage,
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
)
from torchrl.envs import Compose, DoubleToFloat, InitTracker, RewardSum, StepCounter, TransformedEnv
from torchrl.envs.libs.gym import GymEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.objectives import SACLoss, SoftUpdate, group_optimizers
from torchrl.record.loggers import generate_exp_name, get_logger

TOTAL_FRAMES = 1200
FRAMES_PER_BATCH = 100
INIT_RANDOM_FRAMES = 300
UTD = 4
BATCH_SIZE = 64
COMPILE = False
CUDAGRAPHS = False
PRB = True  # TorchRL's prioritized sampler needs its C++ extension


def make_env(max_steps=200):
    return TransformedEnv(
        GymEnv("Pendulum-v1"),
        Compose(InitTracker(), StepCounter(max_steps), DoubleToFloat(), RewardSum()),
    )


def make_sac_agent(env):
    action_spec = env.action_spec_unbatched
    actor_net = nn.Sequential(
        MLP(in_features=3, out_features=2 * action_spec.shape[-1], num_cells=[64, 64],
            activation_class=nn.ReLU),
        NormalParamExtractor(scale_mapping="biased_softplus_1.0"),
    )
    actor = ProbabilisticActor(
        TensorDictModule(actor_net, in_keys=["observation"], out_keys=["loc", "scale"]),
        spec=action_spec,
        in_keys=["loc", "scale"],
        distribution_class=TanhNormal,
        distribution_kwargs={"low": action_spec.space.low, "high": action_spec.space.high,
                             "tanh_loc": False},
        default_interaction_type=ExplorationType.RANDOM,
        return_log_prob=False,
    )
    qvalue = ValueOperator(
        MLP(in_features=4, out_features=1, num_cells=[64, 64], activation_class=nn.ReLU),
        in_keys=["action", "observation"],
    )
    model = nn.ModuleList([actor, qvalue])
    with torch.no_grad(), set_exploration_type(ExplorationType.RANDOM):
        td = env.fake_tensordict()
        for net in model:
            net(td)
    return model


def make_loss_module(model):
    loss_module = SACLoss(
        actor_network=model[0],
        qvalue_network=model[1],
        num_qvalue_nets=2,
        loss_function="l2",
        delay_actor=False,
        delay_qvalue=True,
        alpha_init=1.0,
    )
    loss_module.make_value_estimator(gamma=0.99)
    return loss_module, SoftUpdate(loss_module, eps=0.995)


def make_optimizers(loss_module):
    critic_params = list(loss_module.qvalue_network_params.flatten_keys().values())
    actor_params = list(loss_module.actor_network_params.flatten_keys().values())
    optimizer_actor = torch.optim.Adam(actor_params, lr=3e-4)
    optimizer_critic = torch.optim.Adam(critic_params, lr=3e-4)
    optimizer_alpha = torch.optim.Adam([loss_module.log_alpha], lr=3e-4)
    return group_optimizers(optimizer_actor, optimizer_critic, optimizer_alpha)


def main():
    torch.manual_seed(0)
    scratch = tempfile.mkdtemp()
    exp_name = generate_exp_name("SAC", "pendulum")
    logger = get_logger("csv", logger_name="logs", experiment_name=exp_name)

    train_env = make_env()
    train_env.set_seed(0)
    eval_env = make_env()
    model = make_sac_agent(train_env)
    exploration_policy = model[0]
    loss_module, target_updater = make_loss_module(model)
    optimizer = make_optimizers(loss_module)

    collector = Collector(
        lambda: make_env(),
        exploration_policy,
        init_random_frames=INIT_RANDOM_FRAMES,
        frames_per_batch=FRAMES_PER_BATCH,
        total_frames=TOTAL_FRAMES,
        device="cpu",
        compile_policy={"mode": "reduce-overhead"} if COMPILE else False,
        cudagraph_policy={"warmup": 10} if CUDAGRAPHS else False,
    )
    collector.set_seed(0)
    storage = LazyMemmapStorage(10_000, scratch_dir=scratch, device="cpu")
    if PRB:
        replay_buffer = TensorDictPrioritizedReplayBuffer(
            alpha=0.7, beta=0.5, pin_memory=False, prefetch=3, storage=storage,
            batch_size=BATCH_SIZE,
        )
    else:
        replay_buffer = TensorDictReplayBuffer(
            pin_memory=False, prefetch=3, storage=storage, batch_size=BATCH_SIZE
        )

    def update(sampled_tensordict):
        loss_td = loss_module(sampled_tensordict)
        actor_loss = loss_td["loss_actor"]
        q_loss = loss_td["loss_qvalue"]
        alpha_loss = loss_td["loss_alpha"]
        (actor_loss + q_loss + alpha_loss).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        target_updater.step()
        return loss_td.detach()

    if COMPILE:
        update = compile_with_warmup(update, mode="reduce-overhead", warmup=1)

    collected_frames = 0
    updates = 0
    collector_iter = iter(collector)
    total_iter = len(collector)
    for _ in range(total_iter):
        timeit.printevery(num_prints=2, total_count=total_iter, erase=True)
        with timeit("collect"):
            tensordict = next(collector_iter)
        current_frames = tensordict.numel()
        with timeit("rb - extend"):
            tensordict = tensordict.reshape(-1)
            replay_buffer.extend(tensordict)
        collected_frames += current_frames
        losses = []
        if collected_frames >= INIT_RANDOM_FRAMES:
            with timeit("train"):
                for _ in range(UTD):
                    with timeit("rb - sample"):
                        sampled_tensordict = replay_buffer.sample()
                    with timeit("update"):
                        loss_td = update(sampled_tensordict)
                    losses.append(loss_td.select("loss_actor", "loss_qvalue", "loss_alpha"))
                    if PRB:
                        replay_buffer.update_tensordict_priority(sampled_tensordict)
                    updates += 1
        metrics = {}
        episode_end = tensordict["next", "done"]
        if episode_end.any():
            episode_rewards = tensordict["next", "episode_reward"][episode_end]
            metrics["train/reward"] = episode_rewards.mean().item()
        if losses:
            losses = TensorDict.stack(losses).mean()
            metrics["train/q_loss"] = losses["loss_qvalue"].item()
            metrics["train/actor_loss"] = losses["loss_actor"].item()
            metrics["train/alpha_loss"] = losses["loss_alpha"].item()
            metrics["train/alpha"] = loss_td["alpha"].item()
        metrics.update(timeit.todict(prefix="time"))
        metrics["time/speed"] = collected_frames
        for key, value in metrics.items():
            logger.log_scalar(key, value, step=collected_frames)
        collector.update_policy_weights_()

    with set_exploration_type(ExplorationType.DETERMINISTIC), torch.no_grad():
        eval_rollout = eval_env.rollout(200, model[0], auto_cast_to_device=True,
                                        break_when_any_done=True)
    torchrl_logger.info(f"eval reward: {eval_rollout['next', 'reward'].sum().item():.1f}")
    print(f"frames: {collected_frames}")
    print(f"updates: {updates}")
    print(f"buffer: {len(replay_buffer)}")
    print(f"eval steps: {eval_rollout.numel()}")
    print(f"log dir: {logger.log_dir}")
    collector.shutdown()
    train_env.close()
    eval_env.close()


if __name__ == "__main__":
    main()
