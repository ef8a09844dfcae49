"""The usage-analytics service: HTTP API, use cases, storage and command line."""
