"""Database access: query functions that take a connection, and the migration runner."""
