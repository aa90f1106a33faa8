"""The real-time write path: the orchestrator, one loop per station, dispatch to robots,
durability of results (PostgreSQL or the local outbox) and the station's reads and writes
of the record during outages. Runs on the wall clock; never sleeps to imitate a robot."""
