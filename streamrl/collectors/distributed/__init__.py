"""Collectors whose workers run on other machines: :class:`RayCollector` (TorchRL's
``torchrl.collectors.distributed`` name). Ray is imported when a collector is built."""

from streamrl.collectors.distributed.ray import RayCollector

__all__ = ["RayCollector"]
