"""Results as data: the result protocol, JSON-able image records and the run summary."""
