"""The use cases: what the service does, as plain functions over the ports (ports.py).
No Flask, no SQL, no Redis commands here: the adapters implement the ports, the
entrypoints call these functions."""
