"""Prefect's console handler without tracebacks, for the ``zoo`` commands: a failure inside a flow is then one
log line (Prefect's) and one line of the command's own, not pages of frames. ``--debug`` keeps Prefect's own
handler; the Prefect API (the UI) gets every traceback either way, through its own handler. Chosen by
``flows.cli.crawl.quiet_prefect`` through ``PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS`` (Prefect's logging config
takes any of its keys from the environment), so this module is imported only once Prefect configures logging."""

from __future__ import annotations

import logging

from prefect.logging.handlers import PrefectConsoleHandler


class OneLineConsoleHandler(PrefectConsoleHandler):
    """Prints a record's message without its traceback, on a copy: handlers after it still see the exception."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or record.exc_text:
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        super().emit(record)
