"""The one grammar of metric rules: labelling policies and experiment ``--when`` rules.

A rule is ``METRIC[/DATASET] OP VALUE``::

    acc>=0.9            the summary key ``acc`` is at least 0.9
    acc/coco-2017 > 0.5 the key ``acc/coco-2017`` (metric ``acc`` on dataset ``coco-2017``)
    latency_ms<=20

``OP`` is one of ``>=``, ``<=``, ``>``, ``<``, ``==``, ``!=``; ``VALUE`` is a finite number;
spaces around ``OP`` are allowed. A rule holds for a summary (the latest value of each
metric key) when the key is there, its value is a number and the comparison is true: a
missing key or a text value never satisfies a rule, not even ``!=``. Several rules for one
purpose all have to hold (:func:`all_hold`): rules are ANDed, never ORed.

This module is the only parser (:func:`parse_rule`) and the only evaluator
(:meth:`Rule.holds`); it depends on nothing else in modelbox so every layer can use it.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = ["OPS", "Rule", "RuleSyntaxError", "all_hold", "parse_rule"]

OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}
# Two-character operators first, so ``>=`` is never read as ``>`` then ``=0.9``.
_RULE = re.compile(r"^\s*(?P<key>[^<>=!\s][^<>=!]*?)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
                   r"(?P<value>\S+)\s*$")


class RuleSyntaxError(ValueError):
    """Text that is not ``METRIC[/DATASET] OP VALUE`` (the caller words the error)."""


@dataclass(frozen=True)
class Rule:
    """``metric[/dataset] op value``; :attr:`key` is the summary key it reads."""

    metric: str
    op: str
    value: float
    dataset: str | None = None

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise RuleSyntaxError(f"unknown operator {self.op!r}; use one of {', '.join(OPS)}")
        if not self.metric:
            raise RuleSyntaxError("a rule needs a metric name")

    @property
    def key(self) -> str:
        return f"{self.metric}/{self.dataset}" if self.dataset else self.metric

    def describe(self) -> str:
        return f"{self.key} {self.op} {self.value:g}"

    def holds(self, summary: Mapping[str, float | int | str]) -> bool:
        """True when ``summary`` has a number under :attr:`key` that satisfies the rule."""
        value = summary.get(self.key)
        if isinstance(value, bool) or not isinstance(value, float | int):
            return False
        return OPS[self.op](float(value), self.value)


def parse_rule(text: str) -> Rule:
    """Parse ``METRIC[/DATASET] OP VALUE``; raise :class:`RuleSyntaxError` if it is not."""
    match = _RULE.match(text)
    if match is None:
        raise RuleSyntaxError(
            f"{text!r} is not METRIC[/DATASET] OP VALUE (OP one of {', '.join(OPS)})"
        )
    try:
        value = float(match["value"])
    except ValueError:
        raise RuleSyntaxError(f"{text!r}: {match['value']!r} is not a number") from None
    if not math.isfinite(value):
        raise RuleSyntaxError(f"{text!r}: the value must be a finite number")
    metric, _, dataset = match["key"].partition("/")
    return Rule(metric=metric, op=match["op"], value=value, dataset=dataset or None)


def all_hold(rules: Iterable[Rule], summary: Mapping[str, float | int | str]) -> bool:
    """True when every rule holds (AND); an empty set of rules never holds."""
    found = False
    for rule in rules:
        if not rule.holds(summary):
            return False
        found = True
    return found
