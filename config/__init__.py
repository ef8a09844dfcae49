"""Settings and the gunicorn configuration."""
