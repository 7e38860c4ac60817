"""Structured JSON logs; every line carries the request id of the request it was written for.

Records are handed to a queue on the event loop's thread and formatted and written by a background thread
(`QueueHandler`/`QueueListener` from the standard library), so a slow stdout never stalls request handling.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys
from contextvars import ContextVar

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
    output = logging.StreamHandler(sys.stdout)
    output.setFormatter(json_formatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = logging.handlers.QueueHandler(records)
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
