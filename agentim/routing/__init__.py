"""Live in-process state and the tasks that own it; no SQL text, no quart."""
