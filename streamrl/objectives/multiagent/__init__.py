"""Multi-agent losses (TorchRL's ``torchrl.objectives.multiagent``): :class:`QMixerLoss`
(QMIX / VDN value decomposition). MAPPO, IPPO and MADDPG are the single-agent losses on a
group's keys (``ClipPPOLoss``, ``DDPGLoss``: one term per agent)."""

from streamrl.objectives.multiagent.qmixer import QMixerLoss

__all__ = ["QMixerLoss"]
