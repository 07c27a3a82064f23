"""TorchRL's ``torchrl.data.utils`` path: the spec helpers :func:`consolidate_spec` and
:func:`check_no_exclusive_keys` (from :mod:`streamrl.data.specs`).

>>> from streamrl.data.utils import check_no_exclusive_keys, consolidate_spec
"""

from streamrl.data.specs.consolidate import check_no_exclusive_keys, consolidate_spec

__all__ = ["check_no_exclusive_keys", "consolidate_spec"]
