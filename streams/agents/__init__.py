"""The agents of the worker: one module per agent or agent family."""
