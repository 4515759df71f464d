"""`calendar.cleanup`: the v1 events left in users' Google Calendars, deleted after the window."""
