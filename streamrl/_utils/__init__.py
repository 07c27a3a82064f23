"""TorchRL's ``torchrl._utils`` helpers that user scripts import, under the same names.

- :class:`timeit`: process-wide named timers (``with timeit("train"): ...``, ``timeit.print()``)
- :func:`compile_with_warmup`: eager for the first calls, then :func:`torch.compile`
- :func:`implement_for`: pick a function's implementation by a dependency's installed version
  (pyvers', which tensordict and TorchRL use)
- :data:`logger` (``streamrl``), :data:`VERBOSE`, :data:`RL_WARNINGS`, :func:`rl_warnings`
- :func:`get_available_device`, :func:`seed_generator`, :func:`strtobool`
"""

from pyvers import implement_for as implement_for
from torch.compiler import is_compiling as is_compiling

from streamrl._utils.compile import compile_with_warmup as compile_with_warmup
from streamrl._utils.devices import get_available_device as get_available_device
from streamrl._utils.devices import seed_generator as seed_generator
from streamrl._utils.log import RL_WARNINGS as RL_WARNINGS
from streamrl._utils.log import VERBOSE as VERBOSE
from streamrl._utils.log import logger as logger
from streamrl._utils.log import rl_warnings as rl_warnings
from streamrl._utils.log import strtobool as strtobool
from streamrl._utils.timer import timeit as timeit
