"""The reference side: MMPretrain run live, or a recorded snapshot of it."""
