"""The domain: values, rules and errors of usage analytics. No I/O, no framework."""
