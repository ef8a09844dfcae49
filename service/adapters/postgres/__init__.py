"""Postgres: connections, schema migrations, and one module of SQL per aggregate."""
