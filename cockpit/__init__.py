"""Cutover cockpit: drive a database go-live from one terminal screen."""

__version__ = "0.1.0"
