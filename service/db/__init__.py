"""Postgres: connection pools and schema migrations."""

from service.db.migrate import upgrade_database
from service.db.pool import Database

__all__ = ["Database", "upgrade_database"]
