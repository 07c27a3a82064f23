"""Trainer: the order of the hook points, registration checks, logging, stop, shutdown,
seeding, save/load, and the update arithmetic shared with streamrl.ops.Learner."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import ListCollector, MSELoss, RecordingLogger, make_batch
from tensordict import TensorDict

from streamrl.ops import Learner
from streamrl.trainers import (
    CountFramesLog,
    LogScalar,
    OptimizerHook,
    Trainer,
    UpdateWeights,
)
from streamrl.trainers.trainer import DESTINATIONS


def _recorder(calls, dest):
    n = len(DESTINATIONS[dest])

    def op(*args):
        calls.append(dest)
        if dest.endswith("_log"):
            return {}
        # None keeps the batch, except at process_optim_batch, where it skips the update
        return args[0] if dest == "process_optim_batch" else None

    # give the op the exact arity of its destination, so registration checks pass
    params = ", ".join(f"a{i}" for i in range(n))
    namespace = {"op": op}
    exec(f"def f({params}): return op({params})", namespace)
    return namespace["f"]


def test_hook_points_run_in_order(make_trainer):
    trainer = make_trainer(n_batches=2, optim_steps_per_batch=2, num_epochs=1)
    calls = []
    for dest in DESTINATIONS:
        if dest != "optimizer":
            trainer.register_op(dest, _recorder(calls, dest))
    trainer.train()
    step = ["process_optim_batch", "process_loss", "post_loss", "post_optim", "post_optim_log"]
    batch = (["batch_process", "pre_steps_log", "pre_optim_steps", "pre_epoch_log", "pre_epoch"]
             + step * 2 + ["post_epoch_log", "post_epoch", "post_optim_complete_log",
                           "post_steps", "post_steps_log"])
    assert calls == ["setup", *batch, *batch, "shutdown"]
    assert trainer.optim_count == 4 and trainer.collected_frames == 16


def test_epochs_repeat_the_optimization_of_a_batch(make_trainer):
    trainer = make_trainer(n_batches=1, optim_steps_per_batch=3, num_epochs=2)
    calls = []
    trainer.register_op("pre_epoch", _recorder(calls, "pre_epoch"))
    trainer.train()
    assert calls == ["pre_epoch", "pre_epoch"] and trainer.optim_count == 6


def test_ops_get_their_kwargs_and_transform_the_batch(make_trainer):
    trainer = make_trainer(n_batches=1, optim_steps_per_batch=1)
    seen = {}

    def add_column(batch, value):
        return batch.set("extra", torch.full((batch.shape[0],), value))

    def log(batch):
        seen["extra"] = batch["extra"][0].item()

    trainer.register_op("batch_process", add_column, value=3.0)
    trainer.register_op("pre_steps_log", log)
    trainer.train()
    assert seen == {"extra": 3.0}


def test_loss_writes_do_not_leak_into_the_collected_batch(make_trainer):
    batch = make_batch(8, 0)
    trainer = make_trainer(collector=ListCollector([batch]), total_frames=8)
    trainer.train()
    assert "pred" not in batch.keys()


def test_unknown_destination_and_bad_ops_fail_at_registration(make_trainer):
    trainer = make_trainer()
    with pytest.raises(ValueError, match=r"unknown hook destination 'post_everything'.*batch_process"):
        trainer.register_op("post_everything", print)
    with pytest.raises(TypeError, match="must be callable"):
        trainer.register_op("post_steps", 3)
    # a log hook takes the batch: at post_steps it would be called with nothing
    with pytest.raises(TypeError, match=r"LogScalar cannot be registered at 'post_steps'.*0 positional"):
        trainer.register_op("post_steps", LogScalar())
    with pytest.raises(TypeError, match="cannot be registered at 'optimizer'"):
        trainer.register_op("optimizer", lambda losses: losses)
    with pytest.raises(TypeError, match="cannot be registered at 'batch_process'"):
        trainer.register_op("batch_process", lambda batch: batch, unknown_kwarg=1)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"total_frames": 0}, ValueError, "total_frames must be a positive int, found 0"),
    ({"total_frames": -1}, ValueError, "total_frames"),
    ({"total_frames": 10.0}, ValueError, "total_frames"),
    ({"frame_skip": 0}, ValueError, "frame_skip"),
    ({"optim_steps_per_batch": 0}, ValueError, "optim_steps_per_batch"),
    ({"num_epochs": True}, ValueError, "num_epochs"),
    ({"log_interval": 0}, ValueError, "log_interval"),
    ({"clip_norm": 0.0}, ValueError, "clip_norm"),
    ({"clip_grad_norm": 1}, TypeError, "clip_grad_norm must be a bool"),
    ({"logger": object()}, TypeError, "log_scalar"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"save_trainer_file": 3}, TypeError, "save_trainer_file"),
    ({"learner_backend": "ray"}, TypeError, r"TorchRL's \['learner_backend'\] are not implemented"),
    ({"learner_backend": "ray", "bogus": 1}, TypeError,
     r"\['learner_backend'\].*unexpected keyword arguments \['bogus'\]"),
])
def test_bad_arguments_fail_at_construction(make_trainer, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_trainer(**kwargs)


def test_bad_collector_loss_and_optimizer(loss):
    base = {"total_frames": 8, "frame_skip": 1, "optim_steps_per_batch": 1}
    with pytest.raises(TypeError, match="collector must be an iterable"):
        Trainer(collector=3, loss_module=loss, **base)
    with pytest.raises(TypeError, match="loss_module must be callable"):
        Trainer(collector=[], loss_module="loss", **base)
    with pytest.raises(TypeError, match=r"optimizer must be a torch\.optim\.Optimizer"):
        Trainer(collector=[], loss_module=loss, optimizer="adam", **base)


def test_training_without_an_optimizer_fails_before_collecting(make_trainer):
    class Untouchable(ListCollector):
        def __iter__(self):
            raise AssertionError("collected")

    collector = Untouchable([])
    trainer = make_trainer(collector=collector, optimizer=False)
    with pytest.raises(RuntimeError, match="no optimizer"):
        trainer.train()
    assert collector.shutdowns == 0


def test_log_interval_and_logged_values(make_trainer):
    logger = RecordingLogger()
    trainer = make_trainer(n_batches=4, logger=logger, log_interval=15)
    CountFramesLog().register(trainer)
    trainer.train()
    frames = [(v, s) for n, v, s in logger.rows if n == "n_frames"]
    # sent once more than 15 frames passed since the last send (TorchRL's rule): 2 batches of 8
    assert frames == [(16, 16), (32, 32)]
    assert {"optim_steps", "loss_mse", "n", "grad_norm_0"} <= logger.names()
    assert trainer.last_logged["n_frames"] == 32 and trainer.last_logged["optim_steps"] == 8
    assert logger.flushes == 1


def test_log_hook_returning_a_non_dict_fails(make_trainer):
    trainer = make_trainer()
    trainer.register_op("pre_steps_log", lambda batch: 3.0)
    with pytest.raises(TypeError, match="must return a dict of values to log or None"):
        trainer.train()


def test_progress_bar_shows_pbar_values(make_trainer, capsys):
    trainer = make_trainer(progress_bar=True)
    LogScalar(("next", "reward"), "r_training", log_pbar=True).register(trainer)
    trainer.train()
    err = capsys.readouterr().err
    assert "24/24" in err and "r_training: 1" in err


def test_request_stop_ends_after_the_current_batch(make_trainer):
    trainer = make_trainer(n_batches=5)
    trainer.register_op("post_steps", lambda: trainer.collected_frames >= 16
                        and trainer.request_stop("enough"))
    trainer.train()
    assert trainer.collected_frames == 16 and trainer.stop_reason == "enough"


def test_total_frames_bounds_training_with_frame_skip_and_masks(make_trainer):
    batches = [make_batch(8, i).set(("collector", "mask"), torch.arange(8) < 6) for i in range(5)]
    trainer = make_trainer(collector=ListCollector(batches), total_frames=30, frame_skip=2)
    trainer.train()
    assert trainer.collected_frames == 36  # 3 batches of 6 valid steps x 2


def test_init_random_frames_delay_optimization(make_trainer):
    collector = ListCollector([make_batch(8, i) for i in range(3)], init_random_frames=8)
    trainer = make_trainer(collector=collector)
    trainer.train()
    assert trainer.optim_count == 4  # the first batch only fills up: no update


def test_process_optim_batch_returning_none_skips_the_update(make_trainer):
    trainer = make_trainer(n_batches=1, optim_steps_per_batch=4)
    draws = iter([None, make_batch(4, 0), None, make_batch(4, 1)])
    trainer.register_op("process_optim_batch", lambda batch: next(draws))
    trainer.train()
    assert trainer.optim_count == 2


def test_shutdown_is_idempotent_and_runs_on_errors(make_trainer):
    trainer = make_trainer()
    calls = []
    trainer.register_op("shutdown", lambda: calls.append("shutdown"))

    def boom(batch):
        raise RuntimeError("hook failed")

    trainer.register_op("post_steps_log", boom)
    with pytest.raises(RuntimeError, match="hook failed"):
        trainer.train()
    trainer.shutdown()
    assert calls == ["shutdown"] and trainer.collector.shutdowns == 1
    with pytest.raises(RuntimeError, match="shut down"):
        trainer.train()


def test_context_manager_shuts_down(make_trainer):
    with make_trainer() as trainer:
        pass
    assert trainer.collector.shutdowns == 1


def test_seed_seeds_torch_and_the_collector(make_trainer):
    trainer = make_trainer(seed=7)
    a = torch.rand(3)
    trainer.set_seed()
    assert torch.equal(a, torch.rand(3))
    assert trainer.collector.seeds == [7, 7]
    with pytest.raises(ValueError, match="no seed"):
        make_trainer().set_seed()


def test_register_module_checks(make_trainer):
    trainer = make_trainer()  # registers its OptimizerHook as "optimizer"
    with pytest.raises(RuntimeError, match="already registered as 'optimizer'"):
        OptimizerHook(torch.optim.SGD(MSELoss().parameters(), lr=0.1)).register(trainer)
    with pytest.raises(ValueError, match="reserved"):
        trainer.register_module("state", CountFramesLog())
    with pytest.raises(TypeError, match="state_dict"):
        trainer.register_module("thing", object())
    with pytest.raises(TypeError, match="expects a Trainer"):
        CountFramesLog().register(object())


def test_save_and_load_from_file(make_trainer, tmp_path, loss):
    path = tmp_path / "trainer.pt"
    trainer = make_trainer(n_batches=4, save_trainer_file=path, save_trainer_interval=16)
    count = CountFramesLog()
    count.register(trainer)
    saves = []
    real = trainer.save_trainer

    def spy(force_save=False):
        before = trainer._last_save
        real(force_save)
        if trainer._last_save != before or force_save:
            saves.append(trainer.collected_frames)

    trainer.save_trainer = spy
    trainer.train()
    assert saves == [16, 32, 32]  # every 16 frames, and at the end
    assert [p.name for p in tmp_path.iterdir()] == ["trainer.pt"]  # no temp file left

    fresh_loss = MSELoss()
    fresh = Trainer(collector=[], loss_module=fresh_loss, total_frames=32, frame_skip=1,
                    optim_steps_per_batch=2, progress_bar=False,
                    optimizer=torch.optim.SGD(fresh_loss.parameters(), lr=0.05))
    fresh_count = CountFramesLog()
    fresh_count.register(fresh)
    assert fresh.load_from_file(path) is fresh
    assert (fresh.collected_frames, fresh.optim_count, fresh_count.frame_count) == (32, 8, 32)
    torch.testing.assert_close(fresh_loss.net.weight, loss.net.weight)
    with pytest.raises(TypeError, match=r"only \['map_location'\]"):
        fresh.load_from_file(path, weights_only=False)


def test_load_state_dict_needs_every_registered_module(make_trainer):
    trainer = make_trainer()
    state = trainer.state_dict()
    CountFramesLog().register(trainer)
    with pytest.raises(KeyError, match="count_frames_log"):
        trainer.load_state_dict(state)
    with pytest.raises(ValueError, match="not a Trainer state_dict"):
        trainer.load_state_dict({"optimizer": {}})


def test_saving_a_hook_state_that_weights_only_cannot_load_fails(make_trainer, tmp_path):
    trainer = make_trainer(save_trainer_file=tmp_path / "t.pt")

    class Opaque(CountFramesLog):
        def state_dict(self):
            return {"thing": object()}

    Opaque().register(trainer, "opaque")
    with pytest.raises(TypeError, match=r"checkpoint entry .*'opaque'.*object"):
        trainer.save_trainer(force_save=True)
    assert not os.listdir(tmp_path)


def test_update_is_the_learners_arithmetic(loss):
    """Trainer + OptimizerHook and ops.Learner make bit-identical updates on the same data."""
    twin = MSELoss()
    twin.load_state_dict(loss.state_dict())
    batches = [make_batch(8, i) for i in range(3)]
    trainer = Trainer(collector=ListCollector(batches), total_frames=24, frame_skip=1,
                      optim_steps_per_batch=1, loss_module=loss, clip_norm=0.5,
                      optimizer=torch.optim.Adam(loss.parameters(), lr=0.01), progress_bar=False)
    trainer.train()
    learner = Learner(twin, torch.optim.Adam(twin.parameters(), lr=0.01), max_grad_norm=0.5)
    for batch in batches:
        learner.step({"in": batch})
    for a, b in zip(loss.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_two_optimizers_on_their_own_losses(make_trainer):
    class TwoLosses(MSELoss):
        def __init__(self):
            super().__init__()
            self.other = torch.nn.Linear(2, 1)

        def forward(self, td):
            out = super().forward(td)
            return out.set("loss_other", self.other(td["x"]).pow(2).mean())

    loss = TwoLosses()
    before = loss.other.weight.detach().clone(), loss.net.weight.detach().clone()
    trainer = Trainer(collector=ListCollector([make_batch(8, 0)]), total_frames=8, frame_skip=1,
                      optim_steps_per_batch=1, loss_module=loss, progress_bar=False,
                      logger=RecordingLogger(), log_interval=1)
    OptimizerHook(torch.optim.SGD(loss.net.parameters(), lr=0.1), ["loss_mse"]).register(trainer)
    OptimizerHook(torch.optim.SGD(loss.other.parameters(), lr=0.1), ["loss_other"]).register(
        trainer, "optimizer_other")
    trainer.train()
    assert not torch.equal(before[0], loss.other.weight)
    assert not torch.equal(before[1], loss.net.weight)
    assert {"grad_norm_0", "grad_norm_1"} <= trainer.logger.names()


def test_repr_names_the_hooks(make_trainer):
    trainer = make_trainer()
    UpdateWeights(trainer.collector).register(trainer)
    assert "'optimizer': 1" in repr(trainer) and "'post_steps': 1" in repr(trainer)


def test_an_empty_batch_counts_no_frames(make_trainer):
    trainer = make_trainer(collector=ListCollector([TensorDict({}, [0])]), total_frames=1)
    trainer.register_op("process_optim_batch", lambda batch: None)
    trainer.train()
    assert trainer.collected_frames == 0 and trainer.optim_count == 0


def test_tensorboard_logger_receives_the_scalars(make_trainer, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from streamrl.record import TensorboardLogger

    logger = TensorboardLogger(exp_name="run", log_dir=str(tmp_path))
    trainer = make_trainer(n_batches=3, logger=logger, log_interval=7)
    CountFramesLog().register(trainer)
    trainer.train()
    logger.close()
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("n_frames")] == [(8, 8), (16, 16), (24, 24)]
    assert [e.value for e in acc.Scalars("optim_steps")] == [2, 4, 6]
