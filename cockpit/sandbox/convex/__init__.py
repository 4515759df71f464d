"""A stand-in for a Convex deployment, on loopback: its HTTP server, snapshot imports, functions and storage."""
