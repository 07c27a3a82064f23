"""Reusable test suites: the env contract any environment (or transform stack) must meet."""

from streamrl.testing.env_contract import EnvContractTests, check_env_contract

__all__ = ["EnvContractTests", "check_env_contract"]
