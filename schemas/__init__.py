"""marshmallow schemas: the shapes the service reads and writes. No I/O here."""
