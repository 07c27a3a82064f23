"""Command line: ``streamrl run PIPELINE``, ``streamrl graph PIPELINE``.

A pipeline is a Python file with a ``main(argv) -> int`` function (and, to be drawn by
``streamrl graph``, a ``build_graph(argv) -> Graph`` function). It is named by its path
(``pipelines/ppo_cartpole.py``) or by its name (``ppo_cartpole``), looked up in
``./pipelines/`` and then in the ``pipelines/`` directory of the streamrl source tree.
``streamrl run demo`` runs the built-in demo.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

_BUILTIN = ("demo",)


def pipeline_dirs() -> list[Path]:
    """Where pipeline names are looked up, in order."""
    dirs = [Path.cwd() / "pipelines", Path(__file__).resolve().parent.parent / "pipelines"]
    extra = os.environ.get("STREAMRL_PIPELINES")
    if extra:
        dirs = [Path(p) for p in extra.split(os.pathsep) if p] + dirs
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def available_pipelines() -> list[str]:
    """The names ``streamrl run`` accepts (built-ins and the pipeline files it can find)."""
    names = set(_BUILTIN)
    for d in pipeline_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.py") if not p.name.startswith("_"))
    return sorted(names)


def resolve_pipeline(spec: str) -> Path | None:
    """The file a pipeline path or name refers to, or ``None`` when there is none."""
    path = Path(spec)
    if spec.endswith(".py") or os.sep in spec or (os.altsep and os.altsep in spec):
        return path if path.is_file() else None
    if not spec.isidentifier() or spec.startswith("_"):
        return None
    for d in pipeline_dirs():
        candidate = d / f"{spec}.py"
        if candidate.is_file():
            return candidate
    return None


def load_pipeline(path: str | Path) -> ModuleType:
    """Import a pipeline file as a module (its name: ``streamrl_pipeline_<stem>``)."""
    path = Path(path)
    name = f"streamrl_pipeline_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import a pipeline from {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    # registered before running it: dataclasses and pickling look the module up by name
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    # importable nowhere else: Ray actors receive it by value
    from streamrl._utils.ray_init import mark_local_module

    mark_local_module(module)
    return module


def _pipeline(parser: argparse.ArgumentParser, spec: str, needs: str) -> ModuleType:
    path = resolve_pipeline(spec)
    if path is None:
        parser.error(
            f"unknown pipeline {spec!r}: expected a pipeline file (path ending in .py) or one "
            f"of {', '.join(available_pipelines())}"
        )
    module = load_pipeline(path)
    if not callable(getattr(module, needs, None)):
        parser.error(f"pipeline file {str(path)!r} defines no {needs}(argv) function")
    return module


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamrl`` command."""
    parser = argparse.ArgumentParser(prog="streamrl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline: 'demo', a name in pipelines/ or a path",
                         description="Run a pipeline; arguments after its name go to it "
                                     "(streamrl run ppo_cartpole --help lists them).")
    run.add_argument("pipeline")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the pipeline")
    graph = sub.add_parser("graph", help="print a pipeline's graph (text or Mermaid)")
    graph.add_argument("pipeline")
    graph.add_argument("--mermaid", action="store_true", help="print a Mermaid flowchart")
    graph.add_argument("args", nargs=argparse.REMAINDER,
                       help="pipeline arguments that change the graph")
    sub.add_parser("list", help="list the pipelines 'streamrl run' can find")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in available_pipelines():
            print(name)
        return 0
    if args.command == "run":
        if args.pipeline == "demo":
            from streamrl._demo import main as demo

            return demo(args.args)
        module = _pipeline(run, args.pipeline, "main")
        code = module.main(args.args)
        return 0 if code is None else int(code)
    if args.command == "graph":
        if "--mermaid" in args.args:  # flags after the pipeline name land in args.args
            args.args = [a for a in args.args if a != "--mermaid"]
            args.mermaid = True
        if args.pipeline == "demo":
            from streamrl._demo import build

            g, _ = build(8, 50_000, 1024, "process")
        else:
            g = _pipeline(graph, args.pipeline, "build_graph").build_graph(args.args)
        print(g.to_mermaid() if args.mermaid else g)
        return 0
    return 0  # pragma: no cover (argparse requires a command)


if __name__ == "__main__":
    sys.exit(main())
