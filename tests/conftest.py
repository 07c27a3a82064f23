"""Shared pytest fixtures."""

import os

# TorchRL scripts (they import torchrl): run by tests/torchrl_ports/test_ports.py, never imported
collect_ignore_glob = ["torchrl_ports/scripts/*"]

# streamrl's TorchRL-style reminders (e.g. a loss with target parameters but no target
# updater) are for users; the suite builds such losses on purpose. Tests of the reminders
# turn them back on with monkeypatch.setenv("RL_WARNINGS", "1").
os.environ.setdefault("RL_WARNINGS", "0")
