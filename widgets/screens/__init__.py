"""The cockpit's screens: the main screen, the full screens over it, and the dialogs."""
