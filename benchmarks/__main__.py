"""Command line of the benchmarks: ``python -m benchmarks {speed,run,report,gif} ...``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand -> module; each module has ``add_arguments(parser)`` and ``main(args)``. Imported lazily so that
# ``report`` does not pay for torch and ``--help`` stays fast.
SUBCOMMANDS = {
    "speed": ("benchmarks.speed", "throughput of SB3 DDPG vs DDPGPlus (and SBX if installed), the floors, buffer bytes"),
    "run": ("benchmarks.runner", "run an env x algo x seed grid (parallel, resumable, shardable)"),
    "report": ("benchmarks.report", "tables, IQM + bootstrap CIs, learning curves, summary.csv, README.md"),
    "gif": ("benchmarks.gif", "train (or load) an agent and save a GIF of it"),
}


def main(argv: Sequence[str] | None = None) -> None:
    """
    :param argv: Arguments (default ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if argv and argv[0] == name:
            importlib.import_module(module_name).add_arguments(sub_parser)
    args = parser.parse_args(argv)
    importlib.import_module(SUBCOMMANDS[args.command][0]).main(args)


if __name__ == "__main__":
    main()
