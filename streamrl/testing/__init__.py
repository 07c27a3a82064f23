"""Reusable test suites and helpers: the env contract any environment (or transform stack)
must meet, and the resource counts the fault-injection tests compare."""

from streamrl.testing.env_contract import EnvContractTests, check_env_contract
from streamrl.testing.resources import Resources, check_no_leaks, descendants, pid_alive

__all__ = [
    "EnvContractTests",
    "Resources",
    "check_env_contract",
    "check_no_leaks",
    "descendants",
    "pid_alive",
]
