"""The older ``*TensorSpec`` names (as in the seed tutorial), kept as aliases.

Each name is the same class as its new name, so ``isinstance`` works both ways; the one
exception is :class:`UnboundedDiscreteTensorSpec`, whose dtype defaults to int64.
"""

from __future__ import annotations

from streamrl.data.specs.bounded import Bounded
from streamrl.data.specs.composite import Composite
from streamrl.data.specs.discrete import Binary, Categorical, OneHot
from streamrl.data.specs.multi import MultiCategorical, MultiOneHot
from streamrl.data.specs.unbounded import Unbounded, UnboundedDiscrete

__all__ = [
    "BinaryDiscreteTensorSpec",
    "BoundedTensorSpec",
    "CompositeSpec",
    "DiscreteTensorSpec",
    "MultiDiscreteTensorSpec",
    "MultiOneHotDiscreteTensorSpec",
    "OneHotDiscreteTensorSpec",
    "UnboundedContinuousTensorSpec",
    "UnboundedDiscreteTensorSpec",
]

BoundedTensorSpec = Bounded
UnboundedContinuousTensorSpec = Unbounded
UnboundedDiscreteTensorSpec = UnboundedDiscrete
DiscreteTensorSpec = Categorical
OneHotDiscreteTensorSpec = OneHot
BinaryDiscreteTensorSpec = Binary
MultiDiscreteTensorSpec = MultiCategorical
MultiOneHotDiscreteTensorSpec = MultiOneHot
CompositeSpec = Composite
