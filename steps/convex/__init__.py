"""Convex step kinds (import, run a function, resolve references) and their HTTP client."""
