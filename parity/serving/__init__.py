"""The deployed model and the Triton ensemble: backends, server and repository checks."""
