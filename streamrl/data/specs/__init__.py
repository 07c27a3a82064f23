"""Tensor specs: shapes, dtypes, domains and bounds of env inputs and outputs.

Leaf specs (:class:`Bounded`, :class:`Unbounded`, :class:`Categorical`, :class:`OneHot`,
:class:`Binary`, :class:`MultiCategorical`, :class:`MultiOneHot`) describe one tensor;
:class:`Composite` describes a TensorDict. The older ``*TensorSpec`` names are aliases.
"""

from streamrl.data.specs._base import TensorSpec
from streamrl.data.specs.bounded import Bounded, ContinuousBox
from streamrl.data.specs.composite import Composite
from streamrl.data.specs.discrete import (
    Binary,
    Categorical,
    DiscreteBox,
    MultiCategorical,
    MultiOneHot,
    OneHot,
)
from streamrl.data.specs.gym_spaces import spec_from_gym_space
from streamrl.data.specs.legacy import (
    BinaryDiscreteTensorSpec,
    BoundedTensorSpec,
    CompositeSpec,
    DiscreteTensorSpec,
    MultiDiscreteTensorSpec,
    MultiOneHotDiscreteTensorSpec,
    OneHotDiscreteTensorSpec,
    UnboundedContinuousTensorSpec,
    UnboundedDiscreteTensorSpec,
)
from streamrl.data.specs.unbounded import Unbounded, UnboundedContinuous, UnboundedDiscrete

__all__ = [
    "Binary",
    "BinaryDiscreteTensorSpec",
    "Bounded",
    "BoundedTensorSpec",
    "Categorical",
    "Composite",
    "CompositeSpec",
    "ContinuousBox",
    "DiscreteBox",
    "DiscreteTensorSpec",
    "MultiCategorical",
    "MultiDiscreteTensorSpec",
    "MultiOneHot",
    "MultiOneHotDiscreteTensorSpec",
    "OneHot",
    "OneHotDiscreteTensorSpec",
    "TensorSpec",
    "Unbounded",
    "UnboundedContinuous",
    "UnboundedContinuousTensorSpec",
    "UnboundedDiscrete",
    "UnboundedDiscreteTensorSpec",
    "spec_from_gym_space",
]
