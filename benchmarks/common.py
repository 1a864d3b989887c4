"""
What only the benchmark scripts share: where results live, the command line and the time a file records.

Everything else they need is the package's experiment core (:mod:`sb3_ddpg_plus.experiments`): environments
(``envs``), the train-and-evaluate protocol (``protocol``), statistics (``stats``), rl-zoo3's hyperparameters
(``zoo_hyperparams``), system information and atomic writes (``records``).
"""

from __future__ import annotations

import datetime
import shlex
import sys
from pathlib import Path

#: Where committed results live (``benchmarks/results``).
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def command_line() -> str:
    """
    :return: The command that started this process, as a shell would accept it (``python -m benchmarks ...``).
    """
    argv = list(sys.argv)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        # Run with ``-m``: argv[0] is the file path, the module name is what the user typed.
        module = spec.name.removesuffix(".__main__")
        return shlex.join(["python", "-m", module, *argv[1:]])
    return shlex.join(["python", *argv])


def now_utc() -> str:
    """
    :return: The current UTC time in ISO 8601 format, to the second.
    """
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
