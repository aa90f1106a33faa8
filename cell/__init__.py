"""The cell orchestrator: stations, recipes, dispatch to robots, the production record, CLI."""
