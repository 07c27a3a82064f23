"""Find streamrl names a renamed test file imports that do not exist.

usage: python find_missing.py OUT_JSON TEST_FILE

Static pass: every ``from streamrl.x import y`` / ``import streamrl.x`` in the
test file, the helper modules next to it (``_*.py``, ``conftest.py``) and the
renamed testing package.  Then up to 6 ``--collect-only`` passes with the stubs
installed, adding names reported by collection errors.
Writes {"module": ["name", ...]} (a missing module maps to []).
"""

from __future__ import annotations

import ast
import glob
import importlib
import json
import os
import re
import subprocess
import sys

out_json, test_file = sys.argv[1], sys.argv[2]
testing_dir = os.environ["MEASURE_TESTING_DIR"]

files = [test_file]
d = os.path.dirname(os.path.abspath(test_file))
files += glob.glob(os.path.join(d, "_*.py")) + glob.glob(os.path.join(d, "conftest.py"))
files += glob.glob(os.path.join(os.path.dirname(d), "conftest.py"))
files += glob.glob(os.path.join(os.path.dirname(d), "_utils_internal.py"))
files += glob.glob(os.path.join(testing_dir, "**", "*.py"), recursive=True)

wanted: set[tuple[str, str | None]] = set()
for f in files:
    try:
        tree = ast.parse(open(f).read())
    except SyntaxError:
        continue
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "streamrl":
                for a in node.names:
                    wanted.add((node.module, a.name))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "streamrl":
                    wanted.add((a.name, None))

stubs: dict[str, list[str]] = {}


def add(mod, name):
    lst = stubs.setdefault(mod, [])
    if name and name not in lst and name != "*":
        lst.append(name)


for mod, name in sorted(wanted, key=lambda x: (x[0], x[1] or "")):
    if mod == "streamrl.testing" or mod.startswith("streamrl.testing."):
        continue
    try:
        m = importlib.import_module(mod)
    except Exception:
        add(mod, name)
        continue
    if name is None or name == "*" or hasattr(m, name):
        continue
    try:
        importlib.import_module(f"{mod}.{name}")
        continue
    except Exception:
        pass
    add(mod, name)

PATTERNS = [
    re.compile(r"cannot import name '([\w]+)' from '([\w.]+)'"),
    re.compile(r"module '([\w.]+)' has no attribute '([\w]+)'"),
    re.compile(r"No module named '([\w.]+)'"),
]

for _ in range(6):
    json.dump(stubs, open(out_json, "w"), indent=1, sort_keys=True)
    env = dict(os.environ, MEASURE_STUBS=out_json)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "measure_plugin", test_file],
        capture_output=True, text=True, env=env,
    )
    text = r.stdout + r.stderr
    new = False
    for m in PATTERNS[0].finditer(text):
        name, mod = m.group(1), m.group(2)
        if mod.startswith("streamrl") and name not in stubs.get(mod, []):
            add(mod, name)
            new = True
    for m in PATTERNS[1].finditer(text):
        mod, name = m.group(1), m.group(2)
        if mod.startswith("streamrl") and name not in stubs.get(mod, []):
            add(mod, name)
            new = True
    for m in PATTERNS[2].finditer(text):
        mod = m.group(1)
        if mod.startswith("streamrl") and mod not in stubs:
            add(mod, None)
            new = True
    if not new:
        break
json.dump(stubs, open(out_json, "w"), indent=1, sort_keys=True)
print(f"{sum(len(v) or 1 for v in stubs.values())} stubbed names; last collect rc={r.returncode}")
tail = [ln for ln in text.splitlines() if "error" in ln.lower()][-5:]
print("\n".join(tail))
