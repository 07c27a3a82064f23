"""streamrl.trainers: TorchRL's ``Trainer`` and its hooks.

:class:`Trainer` orders hooks around the collection of batches (a :mod:`streamrl.collectors`
collector) and the optimization steps (the loss module, then :class:`OptimizerHook`, which
updates through :class:`streamrl.ops.GradientStep`, the same arithmetic as
:class:`streamrl.ops.Learner`). The hooks:

* replay: :class:`ReplayBufferTrainer` (a :mod:`streamrl.data` replay buffer);
* optimization: :class:`OptimizerHook`, :class:`LRSchedulerHook`,
  :class:`TargetNetUpdaterHook`, :class:`ValueEstimatorHook`; or, replacing the loss call and
  the optimizer hooks, an :class:`OptimizationStepper` (:class:`DefaultOptimizationStepper`,
  :class:`MixedPrecisionOptimizationStepper`: autocast and gradient accumulation);
* batches: :class:`BatchSubSampler`, :class:`SelectKeys`, :class:`RewardNormalizer`,
  :func:`mask_batch`;
* logging: :class:`LogScalar`, :class:`CountFramesLog`, :class:`LogValidationReward`,
  :class:`LogTiming`, :class:`UTDRHook`;
* control: :class:`UpdateWeights`, :class:`EarlyStopping`, :class:`ClearCudaCache`.

Each hook's ``register(trainer)`` puts it at its default destination; :class:`TrainerHookBase`
is what a new hook implements.
"""

from streamrl.trainers.batch_hooks import (
    BatchSubSampler,
    RewardNormalizer,
    SelectKeys,
    ValueEstimatorHook,
    mask_batch,
)
from streamrl.trainers.control import ClearCudaCache, EarlyStopping
from streamrl.trainers.hook_base import TrainerHookBase
from streamrl.trainers.log_hooks import CountFramesLog, LogScalar, LogTiming, UTDRHook
from streamrl.trainers.optim_hooks import LRSchedulerHook, OptimizerHook, TargetNetUpdaterHook
from streamrl.trainers.replay import ReplayBufferTrainer
from streamrl.trainers.steppers import (
    DefaultOptimizationStepper,
    MixedPrecisionOptimizationStepper,
    OptimizationStepper,
)
from streamrl.trainers.trainer import Trainer
from streamrl.trainers.validation import LogValidationReward
from streamrl.trainers.weights import UpdateWeights

__all__ = [
    "BatchSubSampler",
    "ClearCudaCache",
    "CountFramesLog",
    "DefaultOptimizationStepper",
    "EarlyStopping",
    "LRSchedulerHook",
    "LogScalar",
    "LogTiming",
    "LogValidationReward",
    "MixedPrecisionOptimizationStepper",
    "OptimizationStepper",
    "OptimizerHook",
    "ReplayBufferTrainer",
    "RewardNormalizer",
    "SelectKeys",
    "TargetNetUpdaterHook",
    "Trainer",
    "TrainerHookBase",
    "UTDRHook",
    "UpdateWeights",
    "ValueEstimatorHook",
    "mask_batch",
]
