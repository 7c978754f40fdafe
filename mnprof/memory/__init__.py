"""Memory: a forward pass's measured peak, what is alive at it and why, next to the analytic working set."""
