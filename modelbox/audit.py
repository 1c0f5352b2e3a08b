"""Commit messages as audit records, and audit records back out of history.

Every registry change is one commit whose message has a readable subject and Git trailers
that ``git interpret-trailers --parse`` understands::

    tag ai/vision/yolo:staging v1 -> v2

    Modelbox-Operation: tag.move
    Modelbox-Target: ai/vision/yolo:staging
    Modelbox-Before: v1
    Modelbox-After: v2

A change that also moves tags (``version create --tag``) adds one
``Modelbox-Tag: MODEL:TAG BEFORE -> AFTER`` line per tag (``-`` for none), so
``modelbox log MODEL:TAG`` sees every move of that tag whichever command made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from modelbox.refs import CommitRecord

PREFIX = "Modelbox-"
NONE = "-"


class TagMove(NamedTuple):
    target: str  # MODEL:TAG
    before: str | None
    after: str | None

    def trailer(self) -> str:
        return f"{PREFIX}Tag: {self.target} {self.before or NONE} -> {self.after or NONE}"


@dataclass
class Change:
    """What a command is about to commit, described for the audit log."""

    operation: str
    target: str
    subject: str
    before: str | None = None
    after: str | None = None
    tag_moves: list[TagMove] = field(default_factory=list)
    policy: str | None = None  # the policy rule(s) that made (part of) this change

    def message(self) -> str:
        lines = [f"{PREFIX}Operation: {self.operation}", f"{PREFIX}Target: {self.target}"]
        if self.policy is not None:
            lines.append(f"{PREFIX}Policy: {_one_line(self.policy)}")
        if self.before is not None:
            lines.append(f"{PREFIX}Before: {_one_line(self.before)}")
        if self.after is not None:
            lines.append(f"{PREFIX}After: {_one_line(self.after)}")
        lines.extend(move.trailer() for move in self.tag_moves)
        return f"{self.subject}\n\n" + "\n".join(lines) + "\n"


def _one_line(value: str) -> str:
    return value.replace("\n", " ")


class AuditEvent(NamedTuple):
    """One change read back from history: who, when, what, before and after."""

    commit: str
    author: str
    time: datetime
    operation: str
    target: str
    before: str | None
    after: str | None
    subject: str

    def to_json(self) -> dict[str, str | None]:
        return {
            "commit": self.commit,
            "author": self.author,
            "time": self.time.isoformat(),
            "operation": self.operation,
            "target": self.target,
            "before": self.before,
            "after": self.after,
            "subject": self.subject,
        }


def events(record: CommitRecord) -> list[AuditEvent]:
    """The audit events a commit carries (none for a commit modelbox did not write)."""
    subject, _, body = record.message.partition("\n")
    trailers: dict[str, str] = {}
    moves: list[tuple[str, str | None, str | None]] = []
    for line in body.splitlines():
        key, sep, value = line.partition(": ")
        if not sep or not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        if name == "Tag":
            target, _, change = value.partition(" ")
            before, _, after = change.partition(" -> ")
            moves.append((target, _none(before), _none(after)))
        else:
            trailers[name] = value
    when = datetime.fromtimestamp(record.time, timezone(timedelta(seconds=record.timezone)))

    def event(op: str, target: str, before: str | None, after: str | None) -> AuditEvent:
        return AuditEvent(record.sha, record.author, when, op, target, before, after, subject)

    out = []
    if "Operation" in trailers and "Target" in trailers:
        out.append(
            event(
                trailers["Operation"],
                trailers["Target"],
                trailers.get("Before"),
                trailers.get("After"),
            )
        )
    out.extend(event(tag_operation(b, a), target, b, a) for target, b, a in moves)
    return out


OUTSIDE = " (outside modelbox)"
"""Appended to the operation of a tag move no trailer records (:mod:`modelbox.outside`)."""


def moved_events(record: CommitRecord, moves: list[TagMove], *, outside: bool,
                 ) -> list[AuditEvent]:
    """Tag moves read from a commit's trees rather than its trailers, as events by the
    commit's author: ``outside`` when no trailer describes them (a plain ``git commit``),
    else ordinary moves (a squash merge quoting the squashed commits' trailers)."""
    subject = record.message.partition("\n")[0]
    when = datetime.fromtimestamp(record.time, timezone(timedelta(seconds=record.timezone)))
    suffix = OUTSIDE if outside else ""
    return [
        AuditEvent(record.sha, record.author, when,
                   tag_operation(move.before, move.after) + suffix, move.target,
                   move.before, move.after, subject)
        for move in moves
    ]


def tag_operation(before: str | None, after: str | None) -> str:
    """``tag.assign``, ``tag.move`` or ``tag.remove`` for a tag going before -> after."""
    if before is None:
        return "tag.assign"
    return "tag.remove" if after is None else "tag.move"


def _none(value: str) -> str | None:
    return None if value in ("", NONE) else value


def concerns(event: AuditEvent, target: str) -> bool:
    """Whether ``event`` is about ``target`` (a model, ``MODEL@VERSION`` or ``MODEL:TAG``)."""
    if "@" in target:
        model, _, version = target.partition("@")
        return event.target == target or (
            event.operation.startswith("tag.")
            and event.target.partition(":")[0] == model
            and version in (event.before, event.after)
        )
    if ":" in target:
        return event.operation.startswith("tag.") and event.target == target
    return model_of(event.target) == target


def model_of(target: str) -> str:
    """The model (or experiment, collection) an event's target is about: every event
    :func:`concerns` matches to ``M``, ``M@V`` or ``M:TAG`` has a target about ``M``."""
    return target.partition("@")[0].partition(":")[0]
