"""Request and response of POST /api/v1/usage-analytics (README, "The API")."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from uuid import UUID

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from service.domain.keys import UUID_TEXT
from service.domain.time_buckets import GRANULARITIES, MAX_HOUR_DAYS
from service.domain.time_zones import is_zone

ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A bucket's key: a day or a week's Monday, a month, or an hour with its offset.
BUCKET_KEY = re.compile(
    r"[0-9]{4}-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}[+-][0-9]{2}:[0-9]{2})?)?"
)
MAX_API_KEY_ID_LENGTH = 128
MAX_API_KEY_IDS = 100
MAX_LIMIT = 1000
MAX_CURSOR_LENGTH = 512
GROUP_BY = ("api_key", "clinic")
OPTIONS = frozenset(["time_zone", "granularity", "group_by", "api_key_ids", "limit", "cursor"])
NO_DEFAULT_OPTIONS = ("group_by", "api_key_ids", "limit", "cursor")


class TimeZone(fields.String):
    """An IANA time zone name of the tz database the service ships, case and all."""

    default_error_messages = {  # noqa: RUF012 (marshmallow's own convention)
        "zone": (
            "Not a time zone of the tz database: use an IANA name such as America/New_York "
            "or Asia/Kolkata (abbreviations such as IST and offsets such as +05:30 are not)."
        ),
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        name = super()._deserialize(value, attr, data, **kwargs)
        if not is_zone(name):
            raise self.make_error("zone")
        return name


def distinct(values: list[str]) -> None:
    """Distinct keys: ids that differ only in the case of their hex digits name one key."""
    named = {UUID(value) if UUID_TEXT.fullmatch(value) else value for value in values}
    if len(named) != len(values):
        raise ValidationError("The ids must be distinct.")


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
    time_zone = TimeZone(
        load_default="UTC",
        metadata={
            "description": "The IANA time zone the dates and buckets are in.",
            "example": "America/New_York",
        },
    )
    granularity = fields.String(
        load_default="day",
        validate=validate.OneOf(GRANULARITIES),
        metadata={"description": "The buckets: local hours, days, ISO weeks or months."},
    )
    group_by = fields.String(
        validate=validate.OneOf(GROUP_BY),
        metadata={"description": "Figures per key or per clinic, in pages of `limit` groups."},
    )
    api_key_ids = fields.List(
        fields.String(validate=validate.Length(min=1, max=MAX_API_KEY_ID_LENGTH)),
        validate=[validate.Length(min=1, max=MAX_API_KEY_IDS), distinct],
        metadata={"description": "Only these keys of the organisation (not with api_key_id)."},
    )
    limit = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_LIMIT),
        metadata={"description": "Groups per page (with group_by); 100 when left out."},
    )
    cursor = fields.String(
        validate=validate.Length(min=1, max=MAX_CURSOR_LENGTH),
        metadata={"description": "The next_cursor of the previous page of the same question."},
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
        if data["granularity"] == "hour" and days > MAX_HOUR_DAYS:
            raise ValidationError(
                f"The range spans {days} days; hours are given for {MAX_HOUR_DAYS} at most.",
                "granularity",
            )

    @validates_schema
    def options_go_together(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "api_key_ids" in data and data["api_key_id"] is not None:
            raise ValidationError("Give api_key_id or api_key_ids, not both.", "api_key_ids")
        for name in ("limit", "cursor"):
            if name in data and "group_by" not in data:
                raise ValidationError(f"{name} pages the groups: it needs group_by.", name)

    @post_load
    def options_left_out_are_none(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """None stands for an option left out. It is filled in here rather than as each
        field's load_default, which would let a null through (only api_key_id takes null,
        for "every key") and give the OpenAPI document a default of null that its type
        does not allow."""
        return dict.fromkeys(NO_DEFAULT_OPTIONS) | data


class Metrics(Schema):
    tokens = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    usage = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))
    stt_duration = fields.Integer(required=True, strict=True, validate=validate.Range(min=0))


class ApiKeyDescription(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    clinic_id = fields.String(required=True, allow_none=True)
    clinic_name = fields.String(required=True, allow_none=True)
    is_root = fields.Boolean(required=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    revoked_at = fields.String(required=True, allow_none=True, metadata={"format": "date-time"})


def deltas_field(**kwargs: Any) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=validate.Regexp(BUCKET_KEY)),
        values=fields.Nested(Metrics),
        metadata={"description": "Bucket -> figures, ascending, buckets with usage only."},
        **kwargs,
    )


class QueryDescription(Schema):
    time_zone = fields.String(required=True)
    granularity = fields.String(required=True, validate=validate.OneOf(GRANULARITIES))
    group_by = fields.String(required=True, allow_none=True, validate=validate.OneOf(GROUP_BY))
    start = fields.String(required=True, metadata={"format": "date-time"})
    end = fields.String(
        required=True, metadata={"format": "date-time", "description": "Exclusive."}
    )


class ClinicDescription(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)


class Group(Schema):
    api_key = fields.Nested(ApiKeyDescription)
    clinic = fields.Nested(ClinicDescription, allow_none=True)
    total = fields.Nested(Metrics, required=True)
    deltas = deltas_field(required=True)


class UsageAnalyticsResponse(Schema):
    """The 200 body: `total` is the sum of `deltas`, one entry per bucket with usage; with
    query options, `query` too, and with group_by, `groups` and `next_cursor`."""

    class Meta:
        unknown = RAISE

    api_key = fields.Nested(ApiKeyDescription, required=True, allow_none=True)
    total = fields.Nested(Metrics, required=True)
    deltas = deltas_field(required=True)
    query = fields.Nested(QueryDescription)
    groups = fields.List(fields.Nested(Group))
    next_cursor = fields.String(allow_none=True)
