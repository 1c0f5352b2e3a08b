"""Text that is safe to show: no credentials, no terminal control sequences.

Two rules, applied wherever modelbox shows text to a person (the CLI's output and error
line, log and warning lines) and in every :class:`~modelbox.errors.ModelboxError` message:

* :func:`redact` removes the user-info of every URL (``https://user:pass@host`` becomes
  ``https://***@host``) and masks the value of every secret-looking query parameter
  (``?token=``, ``X-Amz-Signature=``...), the way git redacts credentials in remote URLs.
* :func:`escape_controls` turns C0 and C1 control characters (ESC, BEL, CSI 0x9b, CR...)
  into visible ``\\x1b``-style escapes, so commit text or a description pulled from a remote
  cannot set the terminal's title, clear the screen or rewrite a line already shown.

Only ``re`` is imported: this runs on every command, ``--help`` included.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "credentials_in", "escape_controls", "redact", "safe_text"]

MASK = "***"

# scheme://userinfo@ -- greedy up to the last '@' before the path, as URL parsers read it.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#@\"]*(?:@[^/\s?#@\"]*)*@")
_SECRET_NAME = (
    r"[\w.-]*(?:secret|token|passw(?:or)?d|pwd|sig|signature|credential|key|auth|session)"
    r"[\w.-]*"
)
# ?name=value / &name=value / ;name=value with a secret-looking name.
_SECRET_PARAM = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)[^&;#\s'\"]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def redact(text: str) -> str:
    """``text`` with URL user-info and secret-looking query parameter values masked."""
    if "@" in text:
        text = _USERINFO.sub(rf"\1{MASK}@", text)
    if "=" in text:
        text = _SECRET_PARAM.sub(rf"\1{MASK}", text)
    return text


def credentials_in(url: str) -> str | None:
    """What in ``url`` looks like a credential (``user-info``, ``query parameter 'token'``),
    or None when it carries none."""
    if _USERINFO.search(url):
        return "user-info (user:password@)"
    match = _SECRET_PARAM.search(url)
    if match:
        return f"query parameter {match.group(1)[1:-1]!r}"
    return None


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def escape_controls(text: str, *, newlines: bool = True) -> str:
    """``text`` with control characters shown as ``\\xNN``; tabs are kept, and newlines
    too unless ``newlines`` is False (a one-line message)."""
    pattern = _CONTROL if newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(_escape, text) if pattern.search(text) else text


def safe_text(text: str, *, newlines: bool = True) -> str:
    """:func:`redact`, then :func:`escape_controls`: what the CLI shows."""
    return escape_controls(redact(text), newlines=newlines)
