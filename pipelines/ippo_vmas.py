"""IPPO on VMAS Navigation: ``streamrl run ippo_vmas``.

Independent PPO: ``mappo_vmas`` with a **decentralised** critic (each agent's value reads
only its own observation, as its policy does), the comparison TorchRL's multi-agent PPO
tutorial draws. Everything else (settings, files, resume, flags) is ``mappo_vmas``'s; see
its help.

    $ streamrl run ippo_vmas --frames 30000 --seed 1
    $ streamrl graph ippo_vmas
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from streamrl.cli import load_pipeline

_mappo = load_pipeline(Path(__file__).with_name("mappo_vmas.py"))

NAME = "ippo_vmas"


@dataclass
class IPPOConfig(_mappo.MAPPOConfig):
    """:class:`MAPPOConfig` with ``centralized_critic=False``."""

    centralized_critic: bool = False


# ---------------------------------------------------------------------------------- entry points
_pipeline = _mappo.pipeline(NAME, IPPOConfig, __doc__)
train, parse_args, main = _pipeline.train, _pipeline.parse_args, _pipeline.main
build_graph, run_identity = _pipeline.build_graph, _pipeline.run_identity
COLUMNS = _pipeline.columns

if __name__ == "__main__":
    sys.exit(main())
