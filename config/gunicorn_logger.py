"""gunicorn's logger, as config/gunicorn.conf.py sets it."""

from __future__ import annotations

import logging

from gunicorn.glogging import Logger


class AccessLinesOnlyWhenLogged(Logger):
    """gunicorn builds every request's access-log fields (each header, each environ
    variable) whenever a logging config is given, even for an access logger that drops
    them all: about 0.08 ms a request. Built only when the line would be written."""

    def access(self, resp, req, environ, request_time):
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)
