"""Helpers shared by the tests: generated events with independent sums (events.py),
organisations with their keys (orgs.py), requests to the API (api.py), private servers
(servers.py)."""
