"""Timing a model: the engine and its stop rule, statistics, the timer, the sweep and its plan, the results
store and its records, per-layer timing and instruction counts under Valgrind."""
