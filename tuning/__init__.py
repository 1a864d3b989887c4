"""
Optuna hyperparameter tuning for :class:`sb3_ddpg_plus.DDPGPlus` (``python -m tuning --help``).

One worker process per ``python -m tuning run`` call; any number of workers (on one machine with the default
journal file, on many machines with a PostgreSQL URL) cooperate on the same study.

The search space, the train-and-evaluate protocol and the statistics are the package's
(:mod:`sb3_ddpg_plus.experiments`, shared with ``benchmarks/`` and rl-zoo3's ``-optimize``); this package adds the
study around them: settings stored in the study (``config``), storage (``storage``), the objective with its seeds,
normalisation and pruning (``objective``, ``scoring``), workers (``study``), exports and the report.
"""

__all__ = ["SEARCH_SPACE_VERSION"]

from sb3_ddpg_plus.experiments.search_space import SEARCH_SPACE_VERSION
