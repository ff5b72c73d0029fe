"""``parity suggest``: the DALI pipeline that reproduces a reference, generated and verified."""
