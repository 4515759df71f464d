"""Textual widgets and screens of the cockpit. They render the engine's views; they never run steps."""
