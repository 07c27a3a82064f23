"""Offline datasets as read-only replay buffers over a memory-mapped cache, and the way back.

- :class:`MinariExperienceReplay`: a local Minari dataset (the ``minari`` package).
- :class:`D4RLExperienceReplay`: a local HDF5 file in D4RL's layout (``h5py``).
- :func:`write_minari_dataset`: a replay buffer's or collector's transitions as a Minari
  dataset that ``minari.load_dataset`` reads.
- :func:`load_dataset` (``"minari:ID"``, ``"d4rl:PATH"``) and :func:`register_dataset`.

Each source is converted once into ``<root>/<dataset_id>`` (built in a temporary directory
and renamed, so a failed conversion leaves nothing) and reopened from there afterwards.
Both need the ``offline`` extra (``pip install 'streamrl[offline]'``).
"""

from streamrl.data.datasets.common import BaseDatasetExperienceReplay
from streamrl.data.datasets.d4rl import D4RLExperienceReplay
from streamrl.data.datasets.minari_data import MinariExperienceReplay
from streamrl.data.datasets.minari_writer import write_minari_dataset
from streamrl.data.datasets.registry import load_dataset, register_dataset

__all__ = [
    "BaseDatasetExperienceReplay",
    "D4RLExperienceReplay",
    "MinariExperienceReplay",
    "load_dataset",
    "register_dataset",
    "write_minari_dataset",
]
