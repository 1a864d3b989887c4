"""
Optuna hyperparameter tuning for :class:`sb3_ddpg_plus.DDPGPlus` (``python -m tuning --help``).

One worker process per ``python -m tuning run`` call; any number of workers (on one machine with the default
journal file, on many machines with a PostgreSQL URL) cooperate on the same study.
"""

__all__ = ["SEARCH_SPACE_VERSION"]

from tuning.search_space import SEARCH_SPACE_VERSION
