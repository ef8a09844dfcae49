"""Entrypoints: HTTP (Flask under gunicorn) and the command line, over the same use cases."""
