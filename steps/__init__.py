"""The step kinds that ship with the cockpit, one module per family.

Each kind registers through the `cockpit.steps` entry-point group in pyproject.toml.
"""
