"""Alembic migrations of Vigil's schema, run by ``vigil.store.Database.migrate``."""
