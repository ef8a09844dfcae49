"""Bodies of the operational routes (docs/operations.md)."""

from marshmallow import Schema, fields, validate


class Health(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class Dependency(Schema):
    ok = fields.Boolean(required=True)
    latency_ms = fields.Float(required=True, allow_none=True)
    configured = fields.Boolean(
        metadata={"description": "Redis only: false when REDIS_URL is empty."}
    )


class Readiness(Schema):
    status = fields.String(
        required=True, validate=validate.OneOf(["ok", "degraded", "unavailable"])
    )
    postgres = fields.Nested(Dependency, required=True)
    redis = fields.Nested(Dependency, required=True)
