"""A background loop's failed round: the database being away is one WARNING line naming the cause (a restart is
expected now and then, and the loop retries); anything else is an ERROR with its trace, for someone to look at."""

from __future__ import annotations

import logging

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from shared.background import log_failure

log = logging.getLogger("tests.loop")


def test_database_away_is_one_warning_line_without_a_trace(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tests.loop")
    try:
        try:
            raise asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
        except asyncpg.PostgresError as driver:
            raise DBAPIError("SELECT 1", None, driver) from driver
    except DBAPIError:
        log_failure(log, "consumer %s stopped on an error; restarting", "reporting-portfolio")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.getMessage() == (
        "consumer reporting-portfolio stopped on an error; restarting"
        " (the database is unavailable: CannotConnectNowError: the database system is shutting down)"
    )


def test_any_other_failure_is_an_error_with_its_trace(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tests.loop")
    try:
        raise KeyError("amount")
    except KeyError:
        log_failure(log, "the close of day failed; it will be tried again")
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert record.getMessage() == "the close of day failed; it will be tried again"
