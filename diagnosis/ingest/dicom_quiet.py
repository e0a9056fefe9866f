"""Keeping pydicom from quoting patient data: its warnings and log records cite element values (an invalid birth
date, a UID holding a name, an unknown character set), and so can its exception messages.

:func:`quiet_pydicom` withholds warnings and log records while our code reads, decodes and writes DICOM;
:func:`safe_detail` redacts quoted values and paths from an exception before it becomes a rejection reason.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from pydicom import config as pydicom_config

__all__ = ["QUIET_LOGGERS", "quiet_pydicom", "safe_detail"]

logger = logging.getLogger(__name__)

QUIET_LOGGERS = ("pydicom", "pylibjpeg", "libjpeg", "openjpeg", "rle")  # libraries that may log element values
_QUIET = threading.RLock()  # warning filters and logger switches are process-wide: one quiet section at a time
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|(?:/[^\s/]+)+/?")  # quoted values and file paths in error messages


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Withhold pydicom's (and its decoder plugins') warnings and log records, which may quote element values.

    Warnings are recorded and dropped, the libraries' loggers are switched off and value validation is off (values
    are checked by our own rules, and pydicom's messages would quote them); only a count is logged, at DEBUG.
    Re-entrant; sections in several threads run one at a time.
    """
    with _QUIET, warnings.catch_warnings(record=True) as caught, pydicom_config.disable_value_validation():
        warnings.simplefilter("always")
        saved = []
        for name in QUIET_LOGGERS:
            log = logging.getLogger(name)
            saved.append((log, log.disabled, log.propagate, log.handlers))
            log.disabled, log.propagate, log.handlers = True, False, [logging.NullHandler()]
        try:
            yield
        finally:
            for log, disabled, propagate, handlers in saved:
                log.disabled, log.propagate, log.handlers = disabled, propagate, handlers
    if caught:
        logger.debug("withheld %d pydicom warning(s); they may quote patient data", len(caught))


def safe_detail(error: BaseException) -> str:
    """An exception's type and message (first 200 characters) with quoted values and paths replaced by ``…``."""
    text = _QUOTED.sub("…", " ".join(str(error).split()))[:200]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
