"""S3 options from the environment, checked before botocore sees them.

``AWS_ENDPOINT_URL`` and fsspec's configuration (``FSSPEC_S3``, ``~/.config/fsspec``) are
typed by hand; botocore refuses a bad value only when the first request builds the client,
deep inside an event loop, as a traceback. Check them where they enter instead.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from modelbox.errors import InvalidValueError

_ENDPOINT = re.compile(r"(?i)https?://[^\s/?#]+(?:[/?#]\S*)?")
_WHERE = "the s3 configuration (FSSPEC_S3 or ~/.config/fsspec)"


def check_s3_options(options: dict[str, Any]) -> None:
    """Refuse an endpoint that is not an ``http(s)://host[:port]`` URL, and ``client_kwargs``
    or ``config_kwargs`` that botocore does not take.

    Raises:
        InvalidValueError: naming the value and where it comes from.
    """
    client = options.get("client_kwargs")
    if client is not None:
        import inspect

        from botocore.session import Session  # type: ignore[import-untyped]  # no stubs

        known = set(inspect.signature(Session.create_client).parameters) - {
            "self", "service_name",
        }
        _check_keys("client_kwargs", client, known)
    config = options.get("config_kwargs")
    if config is not None:
        from botocore.config import Config  # type: ignore[import-untyped]  # no stubs

        _check_keys("config_kwargs", config, set(Config.OPTION_DEFAULTS))
    endpoint = options.get("endpoint_url") or (client or {}).get("endpoint_url")
    if endpoint is not None:
        _check_endpoint(endpoint)


def _check_endpoint(endpoint: object) -> None:
    problem = None
    if not isinstance(endpoint, str) or not _ENDPOINT.fullmatch(endpoint):
        problem = "is not an http(s)://host[:port] URL"
    else:
        try:
            urlsplit(endpoint).port  # noqa: B018  # parsing it is the check
        except ValueError as error:
            problem = f"has a bad port ({error})"
    if problem:
        raise InvalidValueError(
            f"the S3 endpoint {endpoint!r} (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3 or "
            f"endpoint_url in fsspec's configuration) {problem}; fix or unset it"
        )


def _check_keys(name: str, value: object, known: set[str]) -> None:
    if not isinstance(value, dict):
        raise InvalidValueError(f"{name} in {_WHERE} must be an object, not {value!r}")
    for key in value:
        if not isinstance(key, str) or key not in known:
            raise InvalidValueError(
                f"{name} in {_WHERE} has the key {key!r}, which botocore does not take; "
                f"use one of {', '.join(sorted(known))}"
            )
