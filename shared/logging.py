"""Structured JSON logs; every line carries the request id of the request it was written for.

Records are handed over on the event loop's thread and formatted and written by a background thread, so a slow
stdout never stalls request handling. The hand-over wakes nobody: the record is appended to a deque, and the writer
thread takes what has gathered every `WRITE_INTERVAL_SECONDS` (the standard library's `QueueListener` is woken for
every record, and that thread switch cost about 60-100 us of CPU per access line on a busy 2-core machine, a third
of the gateway's cost of a proxied webhook: issue 5).
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import logging.handlers
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
WRITE_INTERVAL_SECONDS = 0.05  # a line reaches stdout at most this late
_listener: _Writer | None = None


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


class _Writer:
    """The background thread that formats and writes the records gathered in `records`, a burst at a time (one
    write system call per burst, not one per line)."""

    def __init__(self, output: logging.Handler) -> None:
        self.records: collections.deque[logging.LogRecord] = collections.deque()
        self.handlers = [output]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(WRITE_INTERVAL_SECONDS):
            self.drain()
        self.drain()

    def drain(self) -> None:
        if not self.records:
            return
        output = self.handlers[0]
        while self.records:
            output.handle(self.records.popleft())
        output.flush()

    def stop(self) -> None:
        """Writes what is left and stops the thread."""
        self._stopping.set()
        self._thread.join()


class _StreamOutput(logging.StreamHandler):  # type: ignore[type-arg]
    """Flushed by the writer after each burst, not after every line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)
        except Exception:  # a line that cannot be written is reported by logging (stderr), never raised
            self.handleError(record)


class _QueueHandler(logging.handlers.QueueHandler):
    def __init__(self, records: collections.deque[logging.LogRecord]) -> None:
        super().__init__(records)  # type: ignore[arg-type]  # a deque: `enqueue` appends
        self.records = records

    def enqueue(self, record: logging.LogRecord) -> None:
        self.records.append(record)  # a deque's append is atomic; the writer finds it on its next pass

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
    output = _StreamOutput(sys.stdout)
    output.setFormatter(LineFormatter())
    _listener = _Writer(output)
    handler = _QueueHandler(_listener.records)
    handler.addFilter(_ContextFilter(service))  # on the caller's thread, where the request id is known
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
