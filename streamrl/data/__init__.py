"""streamrl.data: specs, replay buffers (storage x sampler x writer), rate limiters, loaders,
and collector post-processing (:class:`MultiStep`, :class:`DensifyReward`, from
:mod:`streamrl.data.postprocs`), and offline datasets in :mod:`streamrl.data.datasets`.

This namespace only re-exports: specs live in :mod:`streamrl.data.specs`, replay buffers and
everything around them in :mod:`streamrl.data.replay_buffers`.
"""

from streamrl.data import replay_buffers as _replay_buffers
from streamrl.data import specs as _specs
from streamrl.data.postprocs import DensifyReward, MultiStep
from streamrl.data.replay_buffers import *  # noqa: F403
from streamrl.data.specs import *  # noqa: F403

__all__ = [*_specs.__all__, *_replay_buffers.__all__, "DensifyReward", "MultiStep"]
