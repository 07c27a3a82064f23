"""IQL pretrained on a dataset, then fine-tuned online:
``streamrl run iql_offline_to_online --dataset minari:ID``.

Two graphs, one after the other, sharing the networks, the loss and the optimizer:

1. ``iql_offline``'s offline graph for ``--updates`` updates on the dataset (metrics in
   ``<run dir>/pretrain/``);
2. the concurrent off-policy graph of ``sac_pendulum`` (a process rollout playing the
   tanh-Gaussian actor from the first frame, a ratio-limited replay, the learner, weight
   sync, evaluator) for ``--online-frames`` frames, whose replay is an
   ``OfflineToOnlineReplayBuffer``: each sampled batch holds ``--offline-fraction`` dataset
   rows and the rest collected ones (lowered to 0 over ``--anneal-frames`` when set).

IQL's update is the same in both phases (expectile value regression, critics on
``r + gamma * V(s')``, advantage-weighted actor), which is what makes it fine-tune without
the collapse that follows the switch for losses that query out-of-distribution actions.
``checkpoint.pt`` is written after each phase with its ``phase``; ``--resume`` goes on in it.

    $ streamrl run iql_offline_to_online --dataset minari:pendulum/medium-v0 \\
        --updates 20000 --online-frames 10000
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from streamrl.cli import load_pipeline
from streamrl.train import OfflineToOnlineConfig, OfflineToOnlinePipeline

NAME = "iql_offline_to_online"

# IQL's networks, loss and learner
_iql = load_pipeline(Path(__file__).with_name("iql_offline.py"))


@dataclass
class IQLOnlineConfig(OfflineToOnlineConfig, _iql.IQLConfig):
    """IQL's fields and checks (``iql_offline``'s ``IQLConfig``) and the offline-to-online
    ones of :class:`~streamrl.train.OfflineToOnlineConfig`."""


# ---------------------------------------------------------------------------------- entry points
_pipeline = OfflineToOnlinePipeline(NAME, "IQL", IQLOnlineConfig, _iql.make_learner, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph = _pipeline.build_graph

if __name__ == "__main__":
    sys.exit(main())
