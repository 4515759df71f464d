"""Asking every resolver and authoritative server for a name at once, and judging propagation."""
