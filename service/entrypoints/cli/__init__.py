"""The `scrubs-analytics` command line. `main.py` is the console entry; it settles where
metrics go before anything imports prometheus_client, then loads the commands."""
