"""The production record in PostgreSQL: models, engine, recording, queries."""
