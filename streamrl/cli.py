"""Command line: ``streamrl run PIPELINE``, ``streamrl graph PIPELINE``, ``streamrl bench``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamrl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a pipeline: 'demo' or a path to a pipeline file")
    run.add_argument("pipeline")
    run.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the pipeline")
    args = parser.parse_args(argv)
    if args.command == "run":
        if args.pipeline == "demo":
            from streamrl._demo import main as demo

            return demo(args.args)
        parser.error(f"unknown pipeline {args.pipeline!r}: expected 'demo'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
