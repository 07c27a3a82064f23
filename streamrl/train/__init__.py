"""streamrl.train: what training pipelines share beyond the graph.

Checkpoints written atomically and read with ``weights_only=True``, metrics files (CSV and
JSON lines, with an optional plot), run directories, batched evaluation episodes,
command-line flags from a config dataclass (:class:`OffPolicyConfig`: the fields, env,
buffer and graph of an actor-critic off-policy pipeline; :class:`DQNConfig`: the DQN
pipelines' fields; :class:`OfflineConfig`: an offline pipeline's dataset, env and graph), and
:class:`LaggedCollector`
(on-policy collection running ahead of the learner in a worker process, at a bounded policy
lag). :mod:`streamrl.train.driver` puts them together for pipeline files: their command
line, and the run of an off-policy graph; :class:`OfflinePipeline` the run of an offline one.

>>> from streamrl.train import MetricsLogger, save_checkpoint, load_checkpoint
"""

from streamrl.ops.evaluator import evaluate_episodes
from streamrl.train import driver
from streamrl.train.checkpoint import load_checkpoint, save_checkpoint
from streamrl.train.config import (
    add_config_arguments,
    check_field,
    check_non_negative_ints,
    check_positive_ints,
    config_from_args,
    field_overrides,
)
from streamrl.train.dqn_config import DQNConfig
from streamrl.train.lagged_collector import LaggedCollector
from streamrl.train.metrics import MetricsLogger, plot_metrics, read_metrics
from streamrl.train.offline import OfflinePipeline, OfflineResult
from streamrl.train.offline_config import OfflineConfig
from streamrl.train.offline_to_online import (
    OfflineToOnlineConfig,
    OfflineToOnlinePipeline,
    OfflineToOnlineResult,
)
from streamrl.train.offpolicy_config import OffPolicyConfig
from streamrl.train.progress import RunProgress
from streamrl.train.run_dir import make_run_dir

__all__ = [
    "DQNConfig",
    "LaggedCollector",
    "MetricsLogger",
    "OffPolicyConfig",
    "OfflineConfig",
    "OfflinePipeline",
    "OfflineResult",
    "OfflineToOnlineConfig",
    "OfflineToOnlinePipeline",
    "OfflineToOnlineResult",
    "RunProgress",
    "add_config_arguments",
    "check_field",
    "check_non_negative_ints",
    "check_positive_ints",
    "config_from_args",
    "driver",
    "evaluate_episodes",
    "field_overrides",
    "load_checkpoint",
    "make_run_dir",
    "plot_metrics",
    "read_metrics",
    "save_checkpoint",
]
