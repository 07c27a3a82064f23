"""The layering of ARCHITECTURE.md: which package of streamrl may import which.

Every module under ``streamrl/`` is parsed (not imported) and each import of ``streamrl.X`` is
mapped to its layer. Dependencies point down only: data < envs < modules < objectives; the
graph imports no RL layer and no RL layer imports the graph; ops is where they meet;
collectors, train and the CLI sit above. A few small internal modules at the root are shared
by every layer. Also, no module imports a private name (``_x``) or a private module of another
package, nor calls a private method of an env from outside ``streamrl/envs``.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import streamrl

SRC = Path(streamrl.__file__).parent

_RL = {"data", "envs", "modules", "objectives"}
_OPS_AND_BELOW = _RL | {"graph", "ops"}
# layer -> the layers it may import besides "shared" (its own included)
ALLOWED = {
    "shared": set(),
    "data": {"data"},
    "envs": {"data", "envs"},
    "modules": {"data", "envs", "modules"},
    "objectives": _RL,
    "graph": {"graph"},
    "testing": _RL | {"testing"},  # the env contract suite checks envs, not graphs
    # loggers and video recorders (env transforms): below ops, so operators can log
    "record": _RL | {"record"},
    "ops": _OPS_AND_BELOW | {"record"},
    "collectors": _OPS_AND_BELOW | {"record", "collectors"},
    "train": _OPS_AND_BELOW | {"record", "collectors", "train"},
    "trainers": _OPS_AND_BELOW | {"collectors", "train", "record", "trainers"},
    "cli": _OPS_AND_BELOW | {"collectors", "train", "record", "trainers", "testing", "cli"},
}
# modules at the root of the package: internal machinery any layer may use, or the CLI
ROOT_MODULES = {
    "streamrl": "shared",
    "streamrl._mp": "shared",
    "streamrl._warnings": "shared",
    "streamrl.errors": "shared",
    "streamrl.checkpoint": "train",  # whole-run checkpoints, over streamrl.train.checkpoint
    "streamrl._demo": "cli",
    "streamrl.cli": "cli",
}

# packages at the root that are shared machinery like the root modules above (any layer may
# use them; they import no layer): TorchRL's _utils helpers (timeit, logger, ...)
SHARED_PACKAGES = {"_utils"}

FILES = sorted(p.relative_to(SRC.parent).as_posix() for p in SRC.rglob("*.py"))

# Known violations: each mark is strict, so the fix makes the test fail until the mark goes.
KNOWN_LAYER_VIOLATIONS: dict[str, str] = {}
KNOWN_PRIVATE_IMPORTS: dict[str, str] = {}


def _params(known: dict[str, str]) -> list:
    unknown = set(known) - set(FILES)
    if unknown:
        raise ValueError(f"known violations name files that do not exist: {sorted(unknown)}")
    return [
        pytest.param(f, marks=pytest.mark.xfail(strict=True, reason=known[f])) if f in known else f
        for f in FILES
    ]


def module_name(path: str) -> str:
    """``streamrl/envs/common.py`` -> ``streamrl.envs.common`` (a package is its ``__init__``)."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """Whether ``name`` (``streamrl.x.y``) is a module or package of the source tree."""
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def layer_of(name: str) -> str:
    """The layer of module ``name``: its top-level package, or the role of a root module."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in SHARED_PACKAGES:
        return "shared"
    if len(parts) > 1 and (SRC / parts[1] / "__init__.py").is_file():
        return parts[1]
    if name in ROOT_MODULES:
        return ROOT_MODULES[name]
    raise KeyError(f"{name} has no layer: add it to ROOT_MODULES in {__file__}")


def imports(path: str) -> list[tuple[int, str, str | None]]:
    """``(line, module, name)`` for every import of streamrl in a file, at any depth (inside
    functions too); ``name`` is the imported name when it is not itself a module."""
    tree = ast.parse((SRC.parent / path).read_text(), filename=path)
    name = module_name(path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((node.lineno, sub, None) if is_module(sub) else
                             (node.lineno, base, a.name))
    return [(line, mod, name) for line, mod, name in found
            if mod == "streamrl" or mod.startswith("streamrl.")]


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


@pytest.mark.parametrize("path", _params(KNOWN_LAYER_VIOLATIONS))
def test_imports_follow_the_layers(path):
    layer = layer_of(module_name(path))
    allowed = ALLOWED[layer] | {"shared"}
    bad = [
        f"{path}:{line}: imports {mod}{f'.{name}' if name else ''} (layer {layer_of(mod)!r})"
        for line, mod, name in imports(path)
        if layer_of(mod) not in allowed
    ]
    assert not bad, (
        f"layer {layer!r} may import only {sorted(allowed)} (see ARCHITECTURE.md):\n"
        + "\n".join(bad)
    )


@functools.cache
def _private_methods(package: str) -> frozenset[str]:
    """The private methods defined by the classes of ``streamrl.<package>`` (parsed once per
    session: every file of the package asks)."""
    names = set()
    for path in (SRC / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names |= {f.name for f in node.body
                          if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                          and _private(f.name)}
    return frozenset(names)


ENV_PRIVATE_METHODS = _private_methods("envs")


def _own(target: ast.expr) -> bool:
    """``self.x()``, ``cls.x()``, ``super().x()``: a class calling its own (inherited) hooks."""
    if isinstance(target, ast.Name):
        return target.id in ("self", "cls")
    return (isinstance(target, ast.Call) and isinstance(target.func, ast.Name)
            and target.func.id == "super")


@pytest.mark.parametrize("path", _params(KNOWN_PRIVATE_IMPORTS))
def test_no_private_names_across_packages(path):
    own = module_name(path).split(".")[:2]
    bad = []
    for line, mod, name in imports(path):
        parts = mod.split(".")
        if (len(parts) < 2 or parts[:2] == own or parts[1] in SHARED_PACKAGES
                or not (SRC / parts[1] / "__init__.py").is_file()):
            continue  # root modules are shared internals; a package may use its own privates
        if any(_private(p) for p in parts) or (name and _private(name)):
            bad.append(f"{path}:{line}: imports {mod}{f'.{name}' if name else ''}")
    if own != ["streamrl", "envs"]:
        # a name the package's own classes define too is theirs (e.g. a loss's _get)
        env_only = ENV_PRIVATE_METHODS - (
            _private_methods(own[1]) if len(own) > 1 and (SRC / own[1]).is_dir() else set())
        tree = ast.parse((SRC.parent / path).read_text())
        bad += [
            f"{path}:{node.lineno}: calls {ast.unparse(node.func)}() (private to streamrl.envs)"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in env_only
            and not _own(node.func.value)
        ]
    assert not bad, "private names of another package (use its public names):\n" + "\n".join(bad)
