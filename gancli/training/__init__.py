"""The training loop and its parts: run folder, clock, checkpoints, EMA, export."""
