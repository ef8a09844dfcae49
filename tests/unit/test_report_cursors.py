"""Cursors of pages of groups (service/domain/reports.py): opaque, signed, and good only for
the organisation and the question they were made for."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date

import pytest

from service.domain.reports import BadCursor, ReportQuery, make_cursor, read_cursor

SECRET = b"s" * 32
ORG = uuid.UUID("00000000-0000-4000-8000-000000000001")
OTHER_ORG = uuid.UUID("00000000-0000-4000-8000-000000000002")
QUERY = ReportQuery(date(2024, 1, 1), date(2024, 1, 31), "Asia/Kolkata", group_by="clinic", limit=2)
AFTER = "7758da3a-ed37-5339-a779-7a814654fbb4"


def test_a_cursor_reads_back_for_its_organisation_and_question():
    cursor = make_cursor(SECRET, ORG, QUERY, AFTER)
    assert read_cursor(SECRET, ORG, replace(QUERY, cursor=cursor), cursor) == AFTER


def test_a_cursor_names_neither_the_organisation_nor_the_question_in_clear():
    cursor = make_cursor(SECRET, ORG, QUERY, AFTER)
    assert str(ORG) not in cursor and ORG.hex not in cursor
    assert "Kolkata" not in cursor


def test_a_cursor_of_another_organisation_is_refused():
    cursor = make_cursor(SECRET, ORG, QUERY, AFTER)
    with pytest.raises(BadCursor):
        read_cursor(SECRET, OTHER_ORG, QUERY, cursor)


@pytest.mark.parametrize(
    "changed",
    [
        {"start": date(2024, 1, 2)},
        {"time_zone": "UTC"},
        {"group_by": "api_key"},
        {"limit": 3},
        {"api_key_ids": ("a",)},
    ],
)
def test_a_cursor_of_another_question_is_refused(changed):
    cursor = make_cursor(SECRET, ORG, QUERY, AFTER)
    with pytest.raises(BadCursor):
        read_cursor(SECRET, ORG, replace(QUERY, **changed), cursor)


def test_a_cursor_signed_with_another_secret_is_refused():
    cursor = make_cursor(b"t" * 32, ORG, QUERY, AFTER)
    with pytest.raises(BadCursor):
        read_cursor(SECRET, ORG, QUERY, cursor)
