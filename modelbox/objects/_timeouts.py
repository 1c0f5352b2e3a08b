"""How long a store may take to answer, and how often a request is tried: one policy for
every store operation, from the environment (docs/store.md, "Timeouts and retries").

- ``connect``: seconds to open a connection to the endpoint;
- ``read``: seconds the endpoint may stay silent (before its answer starts, and between
  two reads of an answer's body);
- ``attempts``: tries of one request in all (the first included), with exponential backoff
  between them (botocore's "standard" retry mode on S3).

A hostile or frozen endpoint therefore costs at most about ``attempts x (connect + read)``
plus the backoff, never an unbounded wait.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from modelbox.errors import InvalidValueError

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
ATTEMPTS = 3

_CONNECT = "MODELBOX_STORE_CONNECT_TIMEOUT"
_READ = "MODELBOX_STORE_READ_TIMEOUT"
_ATTEMPTS = "MODELBOX_STORE_ATTEMPTS"
_MAX_SECONDS = 24 * 3600.0
_MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class Timeouts:
    """The timeouts and retries of one store."""

    connect: float = CONNECT_TIMEOUT_S
    read: float = READ_TIMEOUT_S
    attempts: int = ATTEMPTS


def from_environment() -> Timeouts:
    """The policy the environment sets now: ``MODELBOX_STORE_CONNECT_TIMEOUT`` and
    ``MODELBOX_STORE_READ_TIMEOUT`` (seconds), ``MODELBOX_STORE_ATTEMPTS`` (else botocore's
    own ``AWS_MAX_ATTEMPTS``), each defaulting to the values above.

    Raises:
        InvalidValueError: a variable is not a positive number (attempts: a whole one).
    """
    attempts_name = _ATTEMPTS if os.environ.get(_ATTEMPTS) else "AWS_MAX_ATTEMPTS"
    return Timeouts(
        connect=_seconds(_CONNECT, CONNECT_TIMEOUT_S),
        read=_seconds(_READ, READ_TIMEOUT_S),
        attempts=_count(attempts_name, ATTEMPTS),
    )


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= _MAX_SECONDS:  # also refuses nan and inf
        raise InvalidValueError(
            f"{name}={raw!r} is not a number of seconds between 0 and {_MAX_SECONDS:g}; "
            f"set it to a positive number such as {default:g}, or unset it"
        )
    return value


def _count(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= _MAX_ATTEMPTS:
        raise InvalidValueError(
            f"{name}={raw!r} is not a number of attempts from 1 to {_MAX_ATTEMPTS}; "
            f"set it to a whole number such as {default}, or unset it"
        )
    return int(raw)
