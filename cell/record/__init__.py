"""The production record in PostgreSQL and every writer of its schema: models, engine,
migrations, job recording and the counter-epoch rule, the roster, alerts, users, and the
supervisors' and technicians' acts with their audit."""
