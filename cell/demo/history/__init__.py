"""A realistic plant history for benchmarks and demos: ``generate_history``.

Lines of five stations at a 76 s takt, three shifts with a weekly planned stop, robot
faults, NOK bursts, technicians' alerts and rework, policy roll-outs and robot swaps.
"""

from cell.demo.history.generate import GenerationReport, HistoryOptions, generate_history

__all__ = ["GenerationReport", "HistoryOptions", "generate_history"]
