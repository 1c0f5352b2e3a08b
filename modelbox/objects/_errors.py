"""Translation of third-party errors into :mod:`modelbox.errors`, one context manager each.

``local_errors`` covers the operating system (a store in a local folder, the local object
cache); ``fsspec_errors`` covers fsspec, s3fs, botocore and aiohttp. Errors modelbox raises on
purpose pass through untouched.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from modelbox.errors import (
    StoreAccessError,
    StoreError,
    StoreTimeoutError,
    StoreUnreachableError,
)
from modelbox.objects._timeouts import Timeouts

_CREDENTIAL_HINTS = {
    "s3": "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
    "gs": "check GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`",
    "az": "check AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY or your Azure login",
}
_PROTOCOL_FAMILY = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az", "adl": "az"}


@contextmanager
def local_errors(what: str) -> Iterator[None]:
    """Turn an ``OSError`` raised while working on the local folder ``what`` into a StoreError.

    Raises:
        StoreAccessError: permission denied.
        StoreError: any other operating-system error (disk full, read-only filesystem...).
    """
    try:
        yield
    except PermissionError as error:
        raise StoreAccessError(
            f"permission denied on {error.filename or what}: check the permissions of {what}"
        ) from error
    except OSError as error:
        raise StoreError(f"{what}: {error.strerror or error} ({error.filename or what})") from error


@contextmanager
def fsspec_errors(
    url: str, protocol: str, endpoint: str | None = None, timeouts: Timeouts | None = None
) -> Iterator[None]:
    """Turn errors of fsspec, s3fs, botocore and aiohttp about the store at ``url`` into ours.

    ``timeouts`` is the policy the store's client was given, to say what ran out.

    Raises:
        StoreAccessError: credentials are missing or refused, or permission is denied.
        StoreTimeoutError: the endpoint did not connect or answer in time, on every attempt.
        StoreUnreachableError: the endpoint cannot be connected to or does not answer in time.
        StoreError: anything else the store refused, such as a bucket that does not exist.
    """
    hint = _CREDENTIAL_HINTS.get(
        _PROTOCOL_FAMILY.get(protocol, protocol),
        f"check the {protocol} credentials in your fsspec configuration "
        f"(FSSPEC_{protocol.upper()}_* variables or ~/.config/fsspec)",
    )
    where = f"{url} at {endpoint}" if endpoint else url
    policy = timeouts or Timeouts()
    try:
        yield
    except _connect_timeouts() as error:
        raise StoreTimeoutError(
            endpoint or url, "accept a connection", policy.connect, policy.attempts
        ) from error
    except _read_timeouts() as error:
        raise StoreTimeoutError(endpoint or url, "answer", policy.read, policy.attempts) from error
    except PermissionError as error:
        raise StoreAccessError(f"access to {url} was refused ({_reason(error)}): {hint}") from error
    except FileNotFoundError as error:
        if names_missing_bucket(error):
            raise StoreError(
                f"the bucket of {url} does not exist: create it or fix the store URL"
            ) from error
        raise StoreError(f"{url}: {error.filename or _reason(error)} was not found") from error
    except _timeouts() as error:
        raise StoreUnreachableError(
            f"cannot reach the store {where} ({error}): check the endpoint "
            "(AWS_ENDPOINT_URL for S3) and the network"
        ) from error
    except _credential_errors() as error:
        raise StoreAccessError(
            f"no usable credentials for {url} ({type(error).__name__}: {error}): {hint}"
        ) from error
    except _connection_errors() as error:
        raise StoreUnreachableError(
            f"cannot reach the store {where} ({error}): check the endpoint "
            "(AWS_ENDPOINT_URL for S3) and the network"
        ) from error
    except OSError as error:
        raise StoreError(f"the store {url} failed: {_reason(error)}") from error
    except _other_errors() as error:
        raise StoreError(f"the store {url} failed: {type(error).__name__}: {error}") from error


def _credential_errors() -> tuple[type[BaseException], ...]:
    # Only a loaded library can have raised its exceptions: look them up lazily so that a
    # local or memory store never imports botocore.
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is None:
        return ()
    names = (
        "NoCredentialsError",
        "PartialCredentialsError",
        "ProfileNotFound",
        "CredentialRetrievalError",
        "NoAuthTokenError",
        "TokenRetrievalError",
        "SSOError",
        "UnauthorizedSSOTokenError",
    )
    return tuple(getattr(exceptions, name) for name in names if hasattr(exceptions, name))


def _connect_timeouts() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is not None:
        found.append(exceptions.ConnectTimeoutError)
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None and hasattr(aiohttp, "ConnectionTimeoutError"):  # aiohttp >= 3.10
        found.append(aiohttp.ConnectionTimeoutError)
    return tuple(found)


def _read_timeouts() -> tuple[type[BaseException], ...]:
    # botocore's ReadTimeoutError (aiobotocore's too, raised while a body streams), aiohttp's
    # timeouts (fsspec's HTTP), asyncio's and fsspec's: each is a TimeoutError or one of
    # botocore's. A plain OS-level ETIMEDOUT is a TimeoutError as well, and means the same.
    found: list[type[BaseException]] = [TimeoutError]
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is not None:
        found.append(exceptions.ReadTimeoutError)
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        found.append(asyncio.TimeoutError)
    return tuple(found)


def _connection_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is not None:
        found += [exceptions.ConnectionError, exceptions.HTTPClientError]
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        found.append(aiohttp.ClientError)
    return tuple(found)


def _other_errors() -> tuple[type[BaseException], ...]:
    exceptions = sys.modules.get("botocore.exceptions")
    if exceptions is None:
        return ()
    return (exceptions.BotoCoreError, exceptions.ClientError)


def _code(error: BaseException) -> str | None:
    """The S3 error code behind an ``OSError`` that s3fs translated from a ClientError."""
    for cause in (error, error.__cause__):
        response = getattr(cause, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            return str(code) if code is not None else None
    return None


def _reason(error: OSError) -> str:
    code = _code(error)
    message = error.strerror or (str(error.args[0]) if error.args else type(error).__name__)
    if code is None:
        return message
    if code.isdigit() or code == message:
        return f"{code} {message}" if code != message else code
    return code


def timed_out(error: BaseException) -> bool:
    """Whether ``error`` says that the store did not connect or answer in time."""
    return isinstance(error, (*_connect_timeouts(), *_read_timeouts()))


def cleanup_errors() -> tuple[type[BaseException], ...]:
    """Every error a store dependency may raise, for best-effort cleanup that must not mask
    the error that made it necessary."""
    return (OSError, *_timeouts(), *_connection_errors(), *_other_errors())


def names_missing_bucket(error: BaseException) -> bool:
    """Whether a ``FileNotFoundError`` from s3fs is about the bucket rather than a key."""
    return _code(error) == "NoSuchBucket"


def _timeouts() -> tuple[type[BaseException], ...]:
    # Before Python 3.11 asyncio's TimeoutError (and fsspec's FSTimeoutError) is no OSError.
    asyncio = sys.modules.get("asyncio")
    extra = (asyncio.TimeoutError,) if asyncio is not None else ()
    return (ConnectionError, TimeoutError, *extra)
