"""Each hook: its behaviour, its default registration, its state_dict round-trip through a
weights_only checkpoint, and its argument checks."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import ListCollector, MSELoss, RecordingLogger, make_batch
from tensordict import TensorDict

from streamrl.data import (
    LazyTensorStorage,
    TensorDictPrioritizedReplayBuffer,
    TensorDictReplayBuffer,
)
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.utils import ExplorationType, exploration_type
from streamrl.objectives import DDPGLoss, HardUpdate
from streamrl.train import load_checkpoint, save_checkpoint
from streamrl.trainers import (
    BatchSubSampler,
    ClearCudaCache,
    CountFramesLog,
    EarlyStopping,
    LogScalar,
    LogTiming,
    LogValidationReward,
    LRSchedulerHook,
    OptimizerHook,
    ReplayBufferTrainer,
    RewardNormalizer,
    SelectKeys,
    TargetNetUpdaterHook,
    Trainer,
    TrainerHookBase,
    UpdateWeights,
    UTDRHook,
    ValueEstimatorHook,
    mask_batch,
)


def roundtrip(hook, fresh, tmp_path):
    """``hook``'s state survives a weights_only checkpoint into ``fresh``."""
    path = save_checkpoint(tmp_path / "hook.pt", {"hook": hook.state_dict()})
    fresh.load_state_dict(load_checkpoint(path)["hook"])
    assert _plain(fresh.state_dict()) == _plain(hook.state_dict())


def _plain(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def registered(hook, trainer, *args):
    hook.register(trainer, *args)
    return {d: len(ops) for d, ops in trainer._ops.items() if ops}


@pytest.fixture
def bare_trainer(loss):
    """A trainer with no optimizer hook (so registrations can be counted)."""
    return Trainer(collector=[], loss_module=loss, total_frames=8, frame_skip=1,
                   optim_steps_per_batch=1, progress_bar=False)


# -------------------------------------------------------------------- base
def test_hook_base_needs_register():
    with pytest.raises(TypeError, match="abstract"):
        TrainerHookBase()

    class Stateless(TrainerHookBase):
        def register(self, trainer, name="s"):
            trainer.register_module(name, self)

    assert Stateless().state_dict() == {}
    with pytest.raises(ValueError, match="has no state"):
        Stateless().load_state_dict({"x": 1})


# -------------------------------------------------------------------- replay
def test_replay_buffer_trainer_extends_samples_and_counts(bare_trainer, tmp_path):
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100))
    hook = ReplayBufferTrainer(rb, batch_size=5, flatten_tensordicts=True)
    assert registered(hook, bare_trainer) == {
        "batch_process": 1, "process_optim_batch": 1, "post_loss": 1}
    assert bare_trainer.modules["replay_buffer"] is hook
    batch = TensorDict({"x": torch.arange(12.0).view(3, 4),
                        ("collector", "mask"): torch.arange(4).expand(3, 4) < 3}, [3, 4])
    assert hook.extend(batch) is None  # the collected batch goes on unchanged
    assert len(rb) == 9 and hook.write_count == 9
    assert set(rb[:]["x"].tolist()) == {0, 1, 2, 4, 5, 6, 8, 9, 10}
    assert hook.sample(None).batch_size == torch.Size([5])
    fresh = ReplayBufferTrainer(TensorDictReplayBuffer(storage=LazyTensorStorage(100)), 5)
    roundtrip(hook, fresh, tmp_path)
    assert len(fresh.replay_buffer) == 9 and fresh.write_count == 9


def test_replay_buffer_trainer_iterates():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=3)
    hook = ReplayBufferTrainer(rb, iterate=True)
    hook.extend(TensorDict({"x": torch.arange(6.0)}, [6]))
    assert [hook.sample(None).batch_size for _ in range(3)] == [torch.Size([3])] * 3


def test_replay_buffer_trainer_updates_priorities():
    rb = TensorDictPrioritizedReplayBuffer(alpha=1.0, beta=1.0, storage=LazyTensorStorage(10))
    hook = ReplayBufferTrainer(rb, batch_size=4)
    hook.extend(TensorDict({"x": torch.arange(4.0)}, [4]))
    sample = hook.sample(None)
    sample.set("td_error", torch.tensor([0.0, 0.0, 0.0, 100.0]))
    hook.update_priority(sample)
    top = sample["index"][3]
    counts = torch.bincount(torch.cat([hook.sample(None)["index"] for _ in range(50)]), minlength=4)
    assert counts.argmax() == top
    plain = ReplayBufferTrainer(TensorDictReplayBuffer(storage=LazyTensorStorage(10)), 2)
    plain.update_priority(sample)  # no priorities: nothing to do


@pytest.mark.parametrize("kwargs, error, match", [
    ({"replay_buffer": [1, 2]}, TypeError, "extend"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": None}, ValueError, "no batch size"),
    ({"flatten_tensordicts": 1}, TypeError, "bools"),
    ({"max_dims": [4]}, TypeError, "max_dims"),
    ({"iterate": True}, ValueError, "iterate=True samples the buffer's own batch_size"),
])
def test_replay_buffer_trainer_bad_arguments(kwargs, error, match):
    args = {"replay_buffer": TensorDictReplayBuffer(storage=LazyTensorStorage(10)),
            "batch_size": 4, **kwargs}
    with pytest.raises(error, match=match):
        ReplayBufferTrainer(**args)


# -------------------------------------------------------------------- optimization
def test_optimizer_hook_steps_on_its_components_and_clips(tmp_path):
    loss = MSELoss()
    opt = torch.optim.SGD(loss.parameters(), lr=1.0)
    hook = OptimizerHook(opt, ["loss_mse"])
    batch = make_batch(8, 0).set("y", torch.full((8, 1), 100.0))
    before = loss.net.bias.detach().clone()
    out = hook(loss(batch), True, 0.5, 3)
    norm = out["grad_norm_3"]
    assert norm > 0.5
    # the step moved the parameters by lr * clipped gradient: total norm 0.5
    moved = torch.cat([(p.detach() - q).flatten() for p, q in
                       zip([loss.net.bias], [before], strict=True)])
    assert moved.norm() <= 0.5 + 1e-5
    # clip by value: each partial derivative within [-0.01, 0.01]
    w = loss.net.weight.detach().clone()
    out = hook(loss(batch), False, 0.01, 0)
    assert "grad_norm_0" not in out.keys()
    assert (loss.net.weight.detach() - w).abs().max() <= 0.01 + 1e-6
    fresh_loss = MSELoss()
    fresh = OptimizerHook(torch.optim.SGD(fresh_loss.parameters(), lr=1.0))
    roundtrip(hook, fresh, tmp_path)
    with pytest.raises(KeyError, match="no \\['loss_nothing'\\]"):
        OptimizerHook(opt, "loss_nothing")(loss(batch))


def test_optimizer_hook_bad_arguments():
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer"):
        OptimizerHook("sgd")
    opt = torch.optim.SGD(MSELoss().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="loss_components"):
        OptimizerHook(opt, [])


@pytest.mark.parametrize("interval, dest", [("batch", "post_steps"), ("optim", "post_optim")])
def test_lr_scheduler_hook(make_trainer, interval, dest, tmp_path):
    collector = ListCollector([make_batch(8, i) for i in range(3)], init_random_frames=8)
    trainer = make_trainer(collector=collector, optim_steps_per_batch=2)
    sched = torch.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
    hook = LRSchedulerHook(sched, interval=interval)
    hook.register(trainer)
    assert len(trainer._ops[dest]) == 1
    trainer.train()
    # two batches optimized (the first only fills up): 2 steps per batch, or 4 optim steps
    expected = 0.05 * 0.5 ** (2 if interval == "batch" else 4)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(expected)
    fresh_opt = torch.optim.SGD(MSELoss().parameters(), lr=0.05)
    fresh = LRSchedulerHook(torch.optim.lr_scheduler.StepLR(fresh_opt, 1, 0.5), interval)
    roundtrip(hook, fresh, tmp_path)
    with pytest.raises(ValueError, match="interval"):
        LRSchedulerHook(sched, interval="epoch")
    with pytest.raises(TypeError, match="LRScheduler"):
        LRSchedulerHook(trainer.optimizer)


def _ddpg_loss():
    from streamrl.modules import Actor, ValueOperator

    actor = Actor(torch.nn.Linear(3, 1))
    value = ValueOperator(torch.nn.Linear(4, 1), in_keys=["observation", "action"])
    return DDPGLoss(actor, value)


def test_target_net_updater_hook_steps_after_each_update(bare_trainer, tmp_path):
    updater = HardUpdate(_ddpg_loss(), period=3)
    hook = TargetNetUpdaterHook(updater)
    assert registered(hook, bare_trainer) == {"post_optim": 1}
    hook()
    hook()
    assert updater.counter == 2
    fresh = TargetNetUpdaterHook(HardUpdate(_ddpg_loss(), period=3))
    roundtrip(hook, fresh, tmp_path)
    assert fresh.target_params_updater.counter == 2
    with pytest.raises(TypeError, match="step"):
        TargetNetUpdaterHook(object())


def test_value_estimator_hook(bare_trainer):
    hook = ValueEstimatorHook(lambda td: td.set("v", td["x"] * 2))
    assert registered(hook, bare_trainer) == {"pre_epoch": 1}
    out = hook(TensorDict({"x": torch.ones(2, requires_grad=True)}, [2]))
    assert out["v"].tolist() == [2, 2] and not out["v"].requires_grad
    assert hook(None) is None
    with pytest.raises(TypeError, match="callable"):
        ValueEstimatorHook(3)


# -------------------------------------------------------------------- batches
def test_batch_subsampler_windows(tmp_path, bare_trainer):
    batch = TensorDict({"t": torch.arange(10).expand(4, 10)}, [4, 10])
    hook = BatchSubSampler(batch_size=12, sub_traj_len=3)
    assert registered(hook, bare_trainer) == {"process_optim_batch": 1}
    out = hook(batch)
    assert out.batch_size == (4, 3)
    assert (out["t"].diff(dim=-1) == 1).all()  # consecutive steps
    assert BatchSubSampler(batch_size=20)(batch).batch_size == (2, 10)
    assert BatchSubSampler(batch_size=5)(TensorDict({"t": torch.arange(7)}, [7])).batch_size == (5,)
    with pytest.raises(ValueError, match="no row fits"):
        BatchSubSampler(batch_size=5)(batch)
    roundtrip(hook, BatchSubSampler(batch_size=12, sub_traj_len=3), tmp_path)


def test_batch_subsampler_stays_within_valid_steps():
    valid = torch.tensor([2, 5, 3])
    mask = torch.arange(6).expand(3, 6) < valid.unsqueeze(-1)
    batch = TensorDict({"t": torch.arange(6).expand(3, 6), ("collector", "mask"): mask}, [3, 6])
    out = BatchSubSampler(batch_size=40, sub_traj_len=4)(batch)
    assert out.batch_size == (10, 4) and out["collector", "mask"].all()
    # no trajectory has 6 valid steps: the length drops to the longest one (5)
    assert BatchSubSampler(batch_size=10, sub_traj_len=6)(batch).batch_size == (2, 5)
    with pytest.raises(ValueError, match="no trajectory has 6 valid steps"):
        BatchSubSampler(batch_size=12, sub_traj_len=6, min_sub_traj_len=6)(batch)


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": 4, "sub_traj_len": -1},
                                    {"batch_size": 4, "sub_traj_len": 2, "min_sub_traj_len": 3}])
def test_batch_subsampler_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        BatchSubSampler(**kwargs)


def test_select_keys_and_mask_batch(bare_trainer):
    hook = SelectKeys(["a", ("n", "b")])
    assert registered(hook, bare_trainer) == {"batch_process": 1}
    td = TensorDict({"a": torch.zeros(2), "c": torch.ones(2), ("n", "b"): torch.ones(2)}, [2])
    assert set(hook(td).keys(True, True)) == {"a", ("n", "b")}
    with pytest.raises(ValueError, match="keys"):
        SelectKeys([])
    assert mask_batch(td) is td
    masked = td.set(("collector", "mask"), torch.tensor([False, True]))
    assert mask_batch(masked).batch_size == (1,)


def test_reward_normalizer(bare_trainer, tmp_path):
    hook = RewardNormalizer(decay=0.5, scale=2.0)
    assert registered(hook, bare_trainer) == {"batch_process": 1, "process_optim_batch": 1}
    batch = TensorDict({("next", "reward"): torch.tensor([[1.0], [3.0]])}, [2])
    with pytest.raises(RuntimeError, match="update_reward_stats"):
        hook.normalize_reward(batch)
    hook.update_reward_stats(batch)
    hook.update_reward_stats(TensorDict({("next", "reward"): torch.tensor([[5.0]])}, [1]))
    # decayed sums: 0.5 * (1 + 3) + 5 over 0.5 * 2 + 1 rows
    assert hook.mean.item() == pytest.approx(7 / 2)
    out = hook.normalize_reward(batch)
    expected = (torch.tensor([1.0, 3.0]) - 3.5) / hook.std.float() * 2
    torch.testing.assert_close(out["next", "reward"].flatten(), expected)
    assert batch["next", "reward"].flatten().tolist() == [1.0, 3.0]  # input untouched
    fresh = RewardNormalizer(decay=0.5, scale=2.0)
    roundtrip(hook, fresh, tmp_path)
    assert fresh.mean == hook.mean
    for bad in ({"decay": 1.5}, {"scale": 0.0}, {"eps": 0.0}):
        with pytest.raises(ValueError):
            RewardNormalizer(**bad)


# -------------------------------------------------------------------- logging
def test_log_scalar_reductions_masks_and_names(bare_trainer, tmp_path):
    hook = LogScalar()
    assert hook.logname == "('next', 'reward')"
    assert registered(hook, bare_trainer) == {"pre_steps_log": 1}
    assert "log_('next', 'reward')" in bare_trainer.modules
    batch = TensorDict({("next", "reward"): torch.tensor([[1.0], [2.0], [9.0]]),
                        ("collector", "mask"): torch.tensor([True, True, False])}, [3])
    assert LogScalar(logname="r", include_std=False)(batch) == {"r": 1.5, "log_pbar": False}
    assert LogScalar(logname="r", reduction="max", include_std=False)(batch)["r"] == 2.0
    assert LogScalar(logname="r", reduction="sum")(batch)["r_std"] == pytest.approx(2 ** -0.5)
    with pytest.raises(KeyError, match=r"no .+action.+ entry"):
        LogScalar("action")(batch)
    for bad, error in (({"reduction": "median"}, ValueError), ({"key": 3}, TypeError),
                       ({"logname": ""}, ValueError), ({"log_pbar": "yes"}, TypeError)):
        with pytest.raises(error):
            LogScalar(**bad)
    roundtrip(hook, LogScalar(), tmp_path)


def test_count_frames_log(bare_trainer, tmp_path):
    hook = CountFramesLog(frame_skip=3, log_pbar=True)
    assert registered(hook, bare_trainer) == {"pre_steps_log": 1}
    batch = TensorDict({("collector", "mask"): torch.tensor([True, False, True])}, [3])
    assert hook(batch) == {"n_frames": 6, "log_pbar": True}
    assert hook(TensorDict({}, [4]))["n_frames"] == 18
    fresh = CountFramesLog(frame_skip=3)
    roundtrip(hook, fresh, tmp_path)
    assert fresh.frame_count == 18
    with pytest.raises(ValueError, match="frame_skip"):
        CountFramesLog(frame_skip=0)


def test_log_timing_logs_hook_times(make_trainer, tmp_path):
    logger = RecordingLogger()
    trainer = make_trainer(logger=logger, log_interval=1, log_timings=True)
    trainer.train()
    names = {n for n in logger.names() if n.startswith("time/hook/")}
    assert "time/hook/OptimizerHook" in names and "time/hook/loss_module" in names
    assert all(v >= 0 for n, v, _ in logger.rows if n.startswith("time/"))
    hook = LogTiming(prefix="t", percall=False, erase=True)
    with pytest.raises(RuntimeError, match="register"):
        hook(None)
    roundtrip(hook, LogTiming(), tmp_path)


def test_log_timing_erase_clears(bare_trainer):
    hook = LogTiming(percall=False, erase=True)
    hook.register(bare_trainer)
    bare_trainer.timings["hook/x"] = [2.0, 4]
    assert hook(None) == {"time/hook/x": 2.0}
    assert hook(None) == {}


def test_utdr_hook(make_trainer, tmp_path):
    trainer = make_trainer(n_batches=3, optim_steps_per_batch=2, logger=RecordingLogger(),
                           log_interval=1)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100))
    ReplayBufferTrainer(rb, batch_size=4).register(trainer)
    hook = UTDRHook(trainer)
    hook.register(trainer)
    trainer.train()
    # logged after each batch is stored, before its updates: batch_size x updates / rows
    ratios = [v for n, v, _ in trainer.logger.rows if n == "utd_ratio"]
    assert ratios == [0.0, pytest.approx(4 * 2 / 16), pytest.approx(4 * 4 / 24)]


def test_utdr_hook_needs_a_replay_buffer_before_training(make_trainer):
    trainer = make_trainer()
    UTDRHook(trainer).register(trainer)
    with pytest.raises(RuntimeError, match="needs exactly one ReplayBufferTrainer"):
        trainer.train()
    assert trainer.collected_frames == 0
    other = make_trainer()
    with pytest.raises(ValueError, match="the trainer it was built with"):
        UTDRHook(trainer).register(other)


def test_log_validation_reward_evaluates_every_interval(bare_trainer, tmp_path):
    env = GymEnv("Pendulum-v1")
    seen = []

    def policy(td):
        seen.append(exploration_type())
        return td.set("action", torch.zeros(*td.shape, 1))

    hook = LogValidationReward(record_interval=3, record_frames=10, frame_skip=2,
                               policy_exploration=policy, environment=env,
                               exploration_type=ExplorationType.DETERMINISTIC, log_pbar=True)
    assert registered(hook, bare_trainer) == {"post_steps_log": 1}
    outs = [hook(None) for _ in range(4)]
    assert [sorted(o) for o in outs] == [["log_pbar", "r_evaluation", "total_r_evaluation"],
                                          [], [], ["log_pbar", "r_evaluation",
                                                   "total_r_evaluation"]]
    first = outs[0]
    assert first["total_r_evaluation"] == pytest.approx(first["r_evaluation"] * 2 * 10)
    assert len(seen) == 20 and set(seen) == {ExplorationType.DETERMINISTIC}
    fresh = LogValidationReward(record_interval=3, record_frames=10, policy_exploration=policy,
                                environment=GymEnv("Pendulum-v1"))
    roundtrip(hook, fresh, tmp_path)
    assert fresh._count == 4
    env.close()
    fresh.environment.close()


def test_log_validation_reward_restores_train_mode_and_logs_other_keys():
    env = GymEnv("Pendulum-v1")
    actor = torch.nn.Linear(3, 1)
    modes = []

    def policy(td):
        modes.append(actor.training)
        return td.set("action", actor(td["observation"]).detach())

    policy.training = True
    policy.eval = lambda: (actor.eval(), None)[1]
    policy.train = lambda: (actor.train(), None)[1]
    hook = LogValidationReward(record_interval=1, record_frames=4, policy_exploration=policy,
                               environment=env, log_keys=["action"],
                               out_keys={"action": "a_eval"})
    out = hook(None)
    assert set(out) == {"a_eval", "total_a_eval", "log_pbar"}
    assert modes == [False] * 4 and actor.training
    env.close()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"record_interval": 0}, ValueError, "record_interval"),
    ({"record_frames": -1}, ValueError, "record_frames"),
    ({"environment": None}, TypeError, "environment must be an env"),
    ({"policy_exploration": 3}, TypeError, "policy_exploration"),
    ({"exploration_type": "random"}, TypeError, "ExplorationType"),
    ({"log_keys": ["action"]}, ValueError, "out_keys has no name"),
    ({"recorder": "env"}, ValueError, "not both"),
])
def test_log_validation_reward_bad_arguments(kwargs, error, match):
    args = {"record_interval": 1, "record_frames": 5, "policy_exploration": lambda td: td,
            "environment": GymEnv("Pendulum-v1"), **kwargs}
    with pytest.raises(error, match=match):
        LogValidationReward(**args)


# -------------------------------------------------------------------- control
def test_update_weights_every_interval(bare_trainer, tmp_path):
    collector = ListCollector([])
    hook = UpdateWeights(collector, update_weights_interval=2)
    assert registered(hook, bare_trainer) == {"post_steps": 1}
    for _ in range(5):
        hook()
    assert collector.weight_updates == 2
    fresh = UpdateWeights(collector, 2)
    roundtrip(hook, fresh, tmp_path)
    assert fresh.counter == 5


def test_update_weights_in_optim_steps_with_a_getter(make_trainer):
    received = []

    class Collector(ListCollector):
        def update_policy_weights_(self, weights=None):
            received.append(weights)

    trainer = make_trainer(collector=Collector([make_batch(8, i) for i in range(2)]),
                           optim_steps_per_batch=3)
    UpdateWeights(trainer.collector, 2, policy_weights_getter=lambda: "w",
                  interval_unit="optim_steps").register(trainer)
    trainer.train()
    assert received == ["w"] * 3  # 6 optim steps, every 2nd


@pytest.mark.parametrize("kwargs, error", [
    ({"collector": object()}, TypeError), ({"update_weights_interval": 0}, ValueError),
    ({"policy_weights_getter": 3}, TypeError), ({"interval_unit": "epochs"}, ValueError),
])
def test_update_weights_bad_arguments(kwargs, error):
    with pytest.raises(error):
        UpdateWeights(**{"collector": ListCollector([]), **kwargs})


def test_early_stopping_stops_when_the_metric_stalls(make_trainer, tmp_path):
    rewards = iter([1.0, 2.0, 1.5, 1.9, 1.8, 5.0, 5.0])
    trainer = make_trainer(n_batches=7)
    trainer.register_op("pre_steps_log", lambda batch: {"r": next(rewards)})
    hook = EarlyStopping(monitor="r", patience=24, wait_for=0, min_delta=0.1)
    hook.register(trainer)
    trainer.train()
    # best 2.0 at 16 frames; no gain over 0.1 by 40 frames -> stop
    assert trainer.collected_frames == 40
    assert trainer.stop_reason == hook.stop_reason and "did not improve on 2.0" in hook.stop_reason
    fresh = EarlyStopping(monitor="r")
    roundtrip(hook, fresh, tmp_path)


def test_early_stopping_waits_and_checks_finite(make_trainer):
    values = iter([1.0, math.nan, 1.0, 1.0])
    trainer = make_trainer(n_batches=4)
    trainer.register_op("pre_steps_log", lambda batch: {"r": next(values)})
    EarlyStopping(monitor="r", patience=100, wait_for=24, mode="min").register(trainer)
    trainer.train()
    assert trainer.collected_frames == 32 and trainer.stop_reason is None  # waited past the NaN
    values = iter([1.0, math.inf])
    trainer = make_trainer(n_batches=4)
    trainer.register_op("pre_steps_log", lambda batch: {"r": next(values)})
    EarlyStopping(monitor="r", wait_for=0).register(trainer)
    trainer.train()
    assert trainer.collected_frames == 16 and "'r' is inf" in trainer.stop_reason


@pytest.mark.parametrize("kwargs", [{"mode": "best"}, {"patience": 0}, {"wait_for": -1},
                                    {"min_delta": -1.0}])
def test_early_stopping_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        EarlyStopping(**kwargs)


def test_clear_cuda_cache_every_interval(bare_trainer, monkeypatch, tmp_path):
    cleared = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: cleared.append(1))
    hook = ClearCudaCache(2)
    assert registered(hook, bare_trainer) == {"pre_optim_steps": 1}
    for _ in range(5):
        hook()
    assert len(cleared) == 2
    fresh = ClearCudaCache(2)
    roundtrip(hook, fresh, tmp_path)
    assert fresh.count == 5
    with pytest.raises(ValueError, match="interval"):
        ClearCudaCache(0)


def test_update_weights_reaches_the_workers_of_a_multiprocess_collector():
    from streamrl.collectors import MultiSyncCollector
    from streamrl.modules import MLP, Actor, ValueOperator

    actor = Actor(MLP(in_features=3, out_features=1, num_cells=[8]))
    value = ValueOperator(MLP(in_features=4, out_features=1, num_cells=[8]),
                          in_keys=["observation", "action"])
    collector = MultiSyncCollector([lambda: GymEnv("Pendulum-v1")] * 2, actor,
                                   frames_per_batch=40, total_frames=160)
    loss = DDPGLoss(actor, value)
    trainer = Trainer(collector=collector, total_frames=160, frame_skip=1,
                      optim_steps_per_batch=2, loss_module=loss,
                      optimizer=torch.optim.Adam(loss.parameters()), progress_bar=False)
    ReplayBufferTrainer(TensorDictReplayBuffer(storage=LazyTensorStorage(1000)), batch_size=16,
                        flatten_tensordicts=True).register(trainer)
    UpdateWeights(collector).register(trainer)
    versions = []
    trainer.register_op("pre_steps_log", lambda batch: versions.append(
        batch["collector", "policy_version"].float().mean().item()))
    trainer.train()
    # each batch was collected with the weights published after the previous one's updates
    assert versions == [0.0, 1.0, 2.0, 3.0]
