"""Request and response of POST /api/v1/usage-analytics (README, "The API")."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_API_KEY_ID_LENGTH = 128


class CalendarDate(fields.Field):
    """A real calendar date written exactly as YYYY-MM-DD."""

    default_error_messages = {  # noqa: RUF012 (marshmallow's own convention)
        "invalid": "Not a valid date: use YYYY-MM-DD.",
        "impossible": "Not a real calendar date.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
            raise self.make_error("invalid")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.make_error("impossible") from None

    def _serialize(self, value: date | None, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else value.isoformat()


class UsageAnalyticsRequest(Schema):
    """The body. `max_range_days` comes from the settings."""

    class Meta:
        unknown = RAISE

    start_date = CalendarDate(required=True, metadata={"example": "2024-01-01"})
    end_date = CalendarDate(required=True, metadata={"example": "2024-01-31"})
    api_key_id = fields.String(
        allow_none=True,
        load_default=None,
        validate=validate.Length(min=1, max=MAX_API_KEY_ID_LENGTH),
        metadata={"description": "One key of the organisation; absent or null for all of them."},
    )

    def __init__(self, *, max_range_days: int = 366, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_range_days = max_range_days

    @validates_schema
    def range_is_ordered_and_bounded(self, data: dict[str, Any], **kwargs: Any) -> None:
        start, end = data["start_date"], data["end_date"]
        if start > end:
            raise ValidationError("start_date must be before or equal to end_date.", "end_date")
        days = (end - start).days + 1
        if days > self.max_range_days:
            raise ValidationError(
                f"The range spans {days} days; at most {self.max_range_days} are allowed.",
                "end_date",
            )


class Metrics(Schema):
    tokens = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    usage = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    stt_duration = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class ApiKeyDescription(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    clinic_id = fields.String(required=True)
    clinic_name = fields.String(required=True)
    is_root = fields.Boolean(required=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    revoked_at = fields.String(required=True, allow_none=True, metadata={"format": "date-time"})


class UsageAnalyticsResponse(Schema):
    """The 200 body: `total` is the sum of `deltas`, one entry per day with usage."""

    class Meta:
        unknown = RAISE

    api_key = fields.Nested(ApiKeyDescription, required=True, allow_none=True)
    total = fields.Nested(Metrics, required=True)
    deltas = fields.Dict(
        keys=fields.String(validate=validate.Regexp(ISO_DATE)),
        values=fields.Nested(Metrics),
        required=True,
    )
