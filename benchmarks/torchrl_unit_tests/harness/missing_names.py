"""List the streamrl names the renamed test files import directly that had to be stubbed.

usage: python missing_names.py RESULTS_DIR RENAMED_TEST_DIR
A name that exists elsewhere in streamrl (e.g. streamrl.modules.Actor) but not at the TorchRL
module path the test imports is marked "(exists at another path)".
"""
import ast
import collections
import glob
import importlib
import json
import os
import sys

res, test_dir = sys.argv[1], sys.argv[2]
found = collections.defaultdict(set)
for sj in glob.glob(os.path.join(res, "stubs", "*.json")):
    k = os.path.basename(sj)[:-5]
    stubs = json.load(open(sj))
    tree = ast.parse(open(os.path.join(test_dir, k.replace("__", "/") + ".py")).read())
    direct = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("streamrl"):
            if not n.module.startswith("streamrl.testing"):
                direct.update((n.module, a.name) for a in n.names)
    for mod, names in stubs.items():
        for nm in names:
            if (mod, nm) in direct:
                found[(mod, nm)].add(k)


def elsewhere(name):
    for pkg in ("streamrl.data", "streamrl.envs", "streamrl.modules", "streamrl.objectives"):
        try:
            if hasattr(importlib.import_module(pkg), name):
                return pkg
        except Exception:
            pass
    return None


print("Names imported by the test files that streamrl lacks (stubbed), by number of files:")
for (mod, nm), fs in sorted(found.items(), key=lambda x: (-len(x[1]), x[0])):
    alt = elsewhere(nm)
    note = f"  (exists as {alt}.{nm})" if alt else ""
    print(f"  {len(fs)}  {mod}.{nm}{note}   [{','.join(sorted(fs))}]")
