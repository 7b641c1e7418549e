"""The SQL backend: SQLAlchemy Core over SQLite (file or memory)."""
