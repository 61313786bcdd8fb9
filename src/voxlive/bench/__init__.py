"""``voxlive bench``: load generation and measurement against a running server."""
