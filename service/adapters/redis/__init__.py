"""Redis: the rollup cache."""
