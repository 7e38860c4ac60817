"""Structured JSON logs; every line carries the request id of the request it was written for.

Records are handed to a queue on the event loop's thread and formatted and written by a background thread
(`QueueHandler`/`QueueListener` from the standard library), so a slow stdout never stalls request handling.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
import sys
import time
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_listener: logging.handlers.QueueListener | None = None


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.service = self.service
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI copy of the message
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(service)s",
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


# the attributes every LogRecord has: what is not among them was passed with `extra=` and goes in the line
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "service"}


class LineFormatter(logging.Formatter):
    """The same JSON line as `json_formatter()` (ts, level, logger, message, request_id, service, then the extras),
    built as one dict dumped by the standard library's C encoder: python-json-logger's generic path cost about
    15 us a line, paid on every request for its access line (this process's CPU, in the writer thread)."""

    def __init__(self) -> None:
        super().__init__()
        self._fallback = json_formatter()
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once a second, not once a line
            self._second, self._stamp = second, time.strftime(self.default_time_format, self.converter(record.created))
        return f"{self._stamp},{int(record.msecs):03d}"  # logging's default "%s,%03d"

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return self._fallback.format(record)  # rare: keep the library's rendering of traces
        line: dict[str, Any] = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "service": getattr(record, "service", None),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        return json.dumps(line, default=str, ensure_ascii=False)


class _Output(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the lines the queue hands over, flushing when the queue is empty rather than after every line (one
    write system call per burst of requests instead of one per request)."""

    def __init__(self, stream: Any, records: queue.SimpleQueue[logging.LogRecord]) -> None:
        super().__init__(stream)
        self.records = records

    def flush(self) -> None:
        if self.records.empty():
            super().flush()


class _QueueHandler(logging.handlers.QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """The standard `prepare` formats the message and copies the record (~6 us on the caller's thread, for every
        line); a record without a trace only needs its message merged (its values are immutable once logged)."""
        if record.exc_info or record.stack_info:
            prepared: logging.LogRecord = super().prepare(record)
            return prepared
        record.msg = record.message = record.getMessage()
        record.args = None
        return record


def stop_logging() -> None:
    """Drain the queue and stop the writer thread (at exit, or before reconfiguring)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        for handler in _listener.handlers:
            handler.flush()  # the queue is empty now: what the writer held back is written
        _listener = None


atexit.register(stop_logging)


def configure_logging(service: str, level: str = "INFO") -> None:
    global _listener
    # The logging HOWTO's optimisations: no caller lookup (a stack walk per line), no thread/process names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False

    stop_logging()
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    output = _Output(sys.stdout, records)
    output.setFormatter(LineFormatter())
    handler = _QueueHandler(records)
    handler.addFilter(_ContextFilter(service))  # on the caller's thread, where the request id is known
    _listener = logging.handlers.QueueListener(records, output)
    _listener.start()

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    # uvicorn's own access log is replaced by ours (which knows the request id).
    logging.getLogger("uvicorn.access").disabled = True
