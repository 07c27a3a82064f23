"""Shared pytest fixtures."""

# TorchRL scripts (they import torchrl): run by tests/torchrl_ports/test_ports.py, never imported
collect_ignore_glob = ["torchrl_ports/scripts/*"]
