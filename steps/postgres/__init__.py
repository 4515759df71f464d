"""PostgreSQL step kinds: SQL, read-only and read-write, the audit, the backup and the export."""
