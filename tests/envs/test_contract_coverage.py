"""Every env class streamrl exports runs the env contract suite (streamrl.testing)."""

import importlib
import pathlib
import sys

import streamrl.envs
import streamrl.envs.libs
from streamrl.envs import EnvBase
from streamrl.testing import EnvContractTests

HERE = pathlib.Path(__file__).parent


def _contract_classes() -> list[type]:
    # the test modules are imported as pytest imports them: by name, from their folder
    for path in sorted(HERE.rglob("test_*.py")):
        if "(EnvContractTests)" in path.read_text():
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            importlib.import_module(path.stem)
    found, todo = [], list(EnvContractTests.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_public_env_class_has_a_contract_case():
    public = set()
    for module in (streamrl.envs, streamrl.envs.libs):
        for name in module.__all__:
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, EnvBase) and obj is not EnvBase:
                public.add(obj)
    covered = set()
    for case in _contract_classes():
        env = case().make_env()
        covered.add(type(env))
        env.close()
    missing = sorted(c.__name__ for c in public - covered)
    assert not missing, f"env classes without an EnvContractTests case: {missing}"
    # and a user's EnvBase subclass, stepped by the default (generic) protocol
    assert any(not c.__module__.startswith("streamrl") for c in covered)
