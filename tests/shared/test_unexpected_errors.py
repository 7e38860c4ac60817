"""What an exception nothing handled becomes: the database gone (a restart) or out of connections is a 503 the
caller can retry; a value the database refuses is a 422; anything else a 500 — never a trace."""

from __future__ import annotations

import json

from shared.problems import unexpected


class DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


class Wrapped(Exception):
    """As SQLAlchemy wraps a driver's error: the original as `orig` and as the cause."""

    def __init__(self, orig: BaseException) -> None:
        super().__init__(str(orig))
        self.orig = orig
        self.__cause__ = orig


def answer(exc: BaseException) -> tuple[int, dict[str, object], dict[str, str]]:
    response = unexpected(exc, "GET", "/api/v1/portfolio/loans")
    return response.status_code, json.loads(bytes(response.body)), dict(response.headers)


def test_a_database_restart_or_refusal_is_a_503_to_retry() -> None:
    for cause in (
        DriverError("57P01"),
        DriverError("08006"),
        DriverError("53300"),
        ConnectionRefusedError(111, "refused"),
    ):
        status, body, headers = answer(Wrapped(cause))
        assert status == 503 and body["type"] == "/problems/database-unavailable", cause
        assert headers["retry-after"] == "5"


def test_a_refused_value_is_a_422_and_anything_else_a_500_without_its_trace() -> None:
    status, body, _ = answer(Wrapped(DriverError("22021")))
    assert status == 422 and "cannot be stored" in str(body["detail"])
    status, body, _ = answer(Wrapped(DriverError("42P01")))  # undefined table: ours, not the client's
    assert status == 500 and "Traceback" not in json.dumps(body)
    status, _, _ = answer(KeyError("x"))
    assert status == 500
