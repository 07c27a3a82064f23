"""Every public name imports and is documented; every subpackage has an explicit ``__all__``;
private modules have none; exceptions and the exploration type import from public homes."""

import ast
import importlib
import pathlib
import pkgutil

import pytest

import streamrl

_PACKAGES = sorted(
    m.name
    for m in pkgutil.walk_packages(streamrl.__path__, prefix="streamrl.")
    if m.ispkg and not any(part.startswith("_") for part in m.name.split("."))
)


def test_subpackages_exist():
    for name in ["graph", "data", "envs", "modules", "objectives", "ops", "collectors", "trainers"]:
        assert f"streamrl.{name}" in _PACKAGES


@pytest.mark.parametrize("package", _PACKAGES)
def test_all_names_import_and_are_documented(package):
    mod = importlib.import_module(package)
    assert mod.__doc__, f"{package} has no module docstring"
    names = getattr(mod, "__all__", None)
    assert names is not None, f"{package} defines no __all__"
    for name in names:
        obj = getattr(mod, name)  # raises if a listed name is missing
        if callable(obj) or isinstance(obj, type):
            assert getattr(obj, "__doc__", None), f"{package}.{name} has no docstring"


_SRC = pathlib.Path(streamrl.__file__).parent
_MODULES = ["streamrl", *sorted(m.name for m in pkgutil.walk_packages(streamrl.__path__, prefix="streamrl."))]


def _is_private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def _defines_all(path: pathlib.Path) -> bool:
    return any(
        isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
        for node in ast.parse(path.read_text()).body
    )


def test_private_modules_define_no_all():
    # a private module's names reach users through a public namespace's __all__, not its own
    offenders = [
        p.relative_to(_SRC.parent).as_posix()
        for p in _SRC.rglob("*.py")
        if any(part.startswith("_") and part != "__init__.py" for part in p.relative_to(_SRC).parts)
        and _defines_all(p)
    ]
    assert not offenders, f"private modules with a public __all__: {sorted(offenders)}"


def test_public_exceptions_import_from_a_public_module():
    exported = set()
    errors = {}
    for name in _MODULES:
        mod = importlib.import_module(name)
        if not _is_private(name):
            exported |= {id(getattr(mod, n)) for n in getattr(mod, "__all__", ())}
        for attr, obj in vars(mod).items():
            if (isinstance(obj, type) and issubclass(obj, BaseException)
                    and obj.__module__ == name and not attr.startswith("_")):
                errors[f"{name}.{attr}"] = obj
    missing = sorted(path for path, cls in errors.items() if id(cls) not in exported)
    assert not missing, f"exceptions no public module exports: {missing}"
    assert {"streamrl.errors.RemoteError", "streamrl.errors.WorkerDiedError"} <= set(errors)


_EXPLORATION = {"ExplorationType", "exploration_type", "set_exploration_type"}


def test_exploration_type_has_one_home():
    import streamrl.envs
    import streamrl.envs.utils
    import streamrl.modules

    for name in _EXPLORATION:
        home = getattr(streamrl.envs.utils, name)
        assert getattr(streamrl.envs, name) is home and getattr(streamrl.modules, name) is home
    # the library's own modules import these names from their home only
    elsewhere = [
        f"{p.relative_to(_SRC.parent).as_posix()}:{node.lineno}: from {node.module}"
        for p in _SRC.rglob("*.py")
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module != "streamrl.envs.utils"
        and _EXPLORATION & {a.name for a in node.names}
    ]
    assert not elsewhere, "import the exploration type from streamrl.envs.utils:\n" + "\n".join(
        elsewhere)
