"""Tensor specs: shapes, dtypes, domains and bounds of env inputs and outputs.

Leaf specs (:class:`Bounded`, :class:`Unbounded`, :class:`Categorical`, :class:`OneHot`,
:class:`Binary`, :class:`MultiCategorical`, :class:`MultiOneHot`) describe one tensor;
:class:`Composite` describes a TensorDict; :class:`NonTensor` a non-tensor entry and
:class:`Choice` one of several specs. ``torch.stack`` of different specs gives a lazy
:class:`Stacked` / :class:`StackedComposite`. The older ``*TensorSpec`` names are aliases.
"""

from streamrl.data.specs._base import TensorSpec
from streamrl.data.specs.bounded import Bounded, BoundedContinuous, BoundedDiscrete, ContinuousBox
from streamrl.data.specs.boxes import BinaryBox, Box, BoxList, CategoricalBox
from streamrl.data.specs.choice import Choice
from streamrl.data.specs.composite import Composite
from streamrl.data.specs.consolidate import check_no_exclusive_keys, consolidate_spec
from streamrl.data.specs.discrete import Binary, Categorical, DiscreteBox, OneHot
from streamrl.data.specs.dm_env_specs import spec_from_dm_env
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
from streamrl.data.specs.multi import MultiCategorical, MultiOneHot
from streamrl.data.specs.nontensor import NonTensor
from streamrl.data.specs.stacked import Stacked, StackedComposite
from streamrl.data.specs.unbounded import Unbounded, UnboundedContinuous, UnboundedDiscrete

__all__ = [
    "Binary",
    "BinaryBox",
    "BinaryDiscreteTensorSpec",
    "Bounded",
    "BoundedContinuous",
    "BoundedDiscrete",
    "BoundedTensorSpec",
    "Box",
    "BoxList",
    "Categorical",
    "CategoricalBox",
    "Choice",
    "Composite",
    "CompositeSpec",
    "ContinuousBox",
    "DiscreteBox",
    "DiscreteTensorSpec",
    "MultiCategorical",
    "MultiDiscreteTensorSpec",
    "MultiOneHot",
    "MultiOneHotDiscreteTensorSpec",
    "NonTensor",
    "OneHot",
    "OneHotDiscreteTensorSpec",
    "Stacked",
    "StackedComposite",
    "TensorSpec",
    "Unbounded",
    "UnboundedContinuous",
    "UnboundedContinuousTensorSpec",
    "UnboundedDiscrete",
    "UnboundedDiscreteTensorSpec",
    "check_no_exclusive_keys",
    "consolidate_spec",
    "spec_from_dm_env",
    "spec_from_gym_space",
]
