"""Typed parity config: the file read, its sections and tolerances."""
