"""JSON merge patch (RFC 7386; strategic merge is treated the same) and JSON patch (RFC 6902)."""

from __future__ import annotations

import copy
from typing import Any

from gepetto_core.errors import InvalidInputError


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise InvalidInputError(f"bad JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _get(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens:
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _remove(doc: Any, tokens: list[str]) -> Any:
    parent = _parent(doc, tokens)
    if isinstance(parent, list):
        return parent.pop(int(tokens[-1]))
    return parent.pop(tokens[-1])


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            parent.insert(int(last), value)
    else:
        parent[last] = value
    return doc


def json_patch(target: Any, operations: list[dict[str, Any]]) -> Any:
    doc = copy.deepcopy(target)
    try:
        for op in operations:
            kind, tokens = op["op"], _pointer(op["path"])
            if kind == "add":
                doc = _add(doc, tokens, copy.deepcopy(op["value"]))
            elif kind == "remove":
                _remove(doc, tokens)
            elif kind == "replace":
                _get(doc, tokens)  # must exist
                if not tokens:
                    doc = copy.deepcopy(op["value"])
                else:
                    _remove(doc, tokens)
                    doc = _add(doc, tokens, copy.deepcopy(op["value"]))
            elif kind == "test":
                if _get(doc, tokens) != op["value"]:
                    raise InvalidInputError(f"test failed at {op['path']}")
            elif kind in ("move", "copy"):
                source = _pointer(op["from"])
                value = _get(doc, source)
                if kind == "move":
                    _remove(doc, source)
                doc = _add(doc, tokens, copy.deepcopy(value))
            else:
                raise InvalidInputError(f"unknown JSON patch op {kind!r}")
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise InvalidInputError(f"JSON patch does not apply: {e}") from e
    return doc
