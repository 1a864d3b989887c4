"""
Benchmarks of ``sb3_ddpg_plus`` against upstream Stable-Baselines3 DDPG and TD3.

Subcommands of ``python -m benchmarks``: ``speed`` (throughput), ``run`` (env x algo x seed grid), ``report``
(tables, statistics, plots) and ``gif`` (animation of a trained agent). See ``benchmarks/results/README.md``.
"""
