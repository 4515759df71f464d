"""`email.send`: the announcements of a go-live, by SMTP, each recipient journaled as it is sent."""
