"""Verification step kinds: counts, references, a field-by-field sample, calculations."""
