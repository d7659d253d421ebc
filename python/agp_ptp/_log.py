"""The library's log records through Python's logging, logger "agp_ptp": connects, handshake
outcomes, refused peers, lost connections, reconnects and resumes, stalled streams. Silent unless
the application configures logging (the logger carries a NullHandler, as libraries' loggers do):

    logging.basicConfig(level=logging.INFO)          # or
    logging.getLogger("agp_ptp").setLevel(logging.WARNING)

Each record's message is "<event>: <text>", and ``record.agp_event`` holds the event name."""
import atexit
import logging

from ._agp_ptp import _set_log_handler

logger = logging.getLogger("agp_ptp")
logger.addHandler(logging.NullHandler())


def _forward(level, event, message):
    if logger.isEnabledFor(level):
        logger.log(level, "%s: %s", event, message, extra={"agp_event": event})


_set_log_handler(_forward, logging.DEBUG)
# Before the interpreter goes: the library must not call into it afterwards.
atexit.register(_set_log_handler, None)
