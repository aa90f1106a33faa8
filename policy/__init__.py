"""The VLA policy: model, training, checkpoints, real-time chunk execution, policy server."""
