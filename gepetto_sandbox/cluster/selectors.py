"""Label and field selectors as the Kubernetes API parses them (the subset clients send)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gepetto_core.errors import InvalidInputError

Matcher = Callable[[Mapping[str, Any]], bool]

_SET_EXPR = re.compile(r"^\s*([^\s!=,()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _label_requirement(expr: str) -> Callable[[Mapping[str, str]], bool]:
    set_match = _SET_EXPR.match(expr)
    if set_match:
        key, op, raw_values = set_match.groups()
        values = {v.strip() for v in raw_values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in expr:
            key, value = (s.strip() for s in expr.split(op, 1))
            if not key:
                break
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if expr.startswith("!"):
        key = expr[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[A-Za-z0-9./_-]+", expr):
        return lambda labels: expr in labels
    raise InvalidInputError(f"unable to parse requirement: {expr!r}")


def label_matcher(selector: str | None) -> Callable[[Mapping[str, str]], bool]:
    if not selector:
        return lambda labels: True
    requirements = [_label_requirement(e) for e in _split_top_level(selector)]
    return lambda labels: all(r(labels) for r in requirements)


_FIELDS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name"),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace"),
    "spec.nodeName": lambda o: o.get("spec", {}).get("nodeName"),
    "status.phase": lambda o: o.get("status", {}).get("phase"),
    "spec.unschedulable": lambda o: str(bool(o.get("spec", {}).get("unschedulable"))).lower(),
}


def field_matcher(selector: str | None) -> Matcher:
    if not selector:
        return lambda obj: True
    checks: list[Matcher] = []
    for expr in _split_top_level(selector):
        for op in ("!=", "==", "="):
            if op in expr:
                path, value = (s.strip() for s in expr.split(op, 1))
                break
        else:
            raise InvalidInputError(f"invalid field selector: {expr!r}")
        getter = _FIELDS.get(path)
        if getter is None:
            raise InvalidInputError(f'field label not supported: "{path}"')
        negate = op == "!="

        def check(
            obj: Mapping[str, Any], g: Any = getter, v: str = value, n: bool = negate
        ) -> bool:
            actual = g(obj)
            return ((actual or "") == v) != n

        checks.append(check)
    return lambda obj: all(c(obj) for c in checks)


def object_matcher(label_selector: str | None, field_selector: str | None) -> Matcher:
    labels = label_matcher(label_selector)
    fields = field_matcher(field_selector)
    return lambda obj: labels(obj.get("metadata", {}).get("labels") or {}) and fields(obj)
