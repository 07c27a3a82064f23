"""The scripts are TorchRL code (they import torchrl): run by test_ports.py, never imported."""

collect_ignore_glob = ["scripts/*"]
