"""Adapters: the ports of service/usecases/ports.py on Postgres and on Redis."""
