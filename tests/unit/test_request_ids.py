"""A request's id: the client's when usable, else one from the system's generator (a
seeded generator's ids could be rebuilt from those it gave out, and the next foretold)."""

from __future__ import annotations

from flask import Flask

from service.entrypoints.http import conventions


def test_a_new_request_id_is_16_bytes_of_the_systems_generator_and_kept(monkeypatch):
    drawn = []

    def urandom(size: int) -> bytes:
        drawn.append(size)
        return bytes(range(size))

    monkeypatch.setattr(conventions.os, "urandom", urandom)
    with Flask(__name__).test_request_context(headers={"X-Request-ID": "\x01bad"}):
        first = conventions.request_id()
        assert first == bytes(range(16)).hex()
        assert conventions.request_id() == first  # one id a request
    assert drawn == [16]


def test_a_usable_client_request_id_is_kept_as_sent(monkeypatch):
    monkeypatch.setattr(conventions.os, "urandom", lambda size: b"\0" * size)
    with Flask(__name__).test_request_context(headers={"X-Request-ID": "order-42 retry"}):
        assert conventions.request_id() == "order-42 retry"
