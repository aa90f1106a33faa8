"""The simulated line for demos and benchmarks: the demo runner, the simulated technician
and supervisor, the PLC simulator for a line config and the plant-history generator.
Nothing in ``cell.line``, ``cell.record``, ``cell.insight`` or ``cell.api`` imports it."""
