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

# scheme://userinfo@ -- up to the last '@' before the path, as URL parsers read it. Every
# repetition is bounded or stops at a delimiter, so hostile text of any length costs linear
# time (an unbounded scheme part was quadratic on "a.a.a...@").
_USERINFO = re.compile(
    r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,31}://)[^/\s?#@\"]*(?:@[^/\s?#@\"]*)*@"
)
# ?name=value / &name=value / ;name=value; the name is checked apart (see _mask_param).
_PARAM = re.compile(r"([?&;])([\w.-]{1,128})=([^&;#\s'\"]*)")
_SECRET_NAME = re.compile(
    r"(?i)secret|token|passw(?:or)?d|pwd|sig|signature|credential|key|auth|session"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def redact(text: str) -> str:
    """``text`` with URL user-info and secret-looking query parameter values masked."""
    if "@" in text:
        text = _USERINFO.sub(rf"\1{MASK}@", text)
    if "=" in text:
        text = _PARAM.sub(_mask_param, text)
    return text


def _mask_param(match: re.Match[str]) -> str:
    sep, name, value = match.groups()
    if value and _SECRET_NAME.search(name):
        return f"{sep}{name}={MASK}"
    return match.group()


def credentials_in(url: str) -> str | None:
    """What in ``url`` looks like a credential (``user-info``, ``query parameter 'token'``),
    or None when it carries none."""
    if _USERINFO.search(url):
        return "user-info (user:password@)"
    for match in _PARAM.finditer(url):
        if _SECRET_NAME.search(match.group(2)):
            return f"query parameter {match.group(2)!r}"
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
