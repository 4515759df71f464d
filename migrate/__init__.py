"""Versioned migrations on both databases (Convex and PostgreSQL), in the second seed's format:
the files and their checks; applying, tracking and rolling back come on top of these."""
