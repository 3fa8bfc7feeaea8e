"""``$ref`` checking across a set of JSON documents (local pointers and relative files).

The generated contract documents reference each other (AsyncAPI payloads point at schema
files, schemas at their own ``$defs``); a broken reference is invisible until some tool
trips on it, so the test and ``contracts check`` resolve every one.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from typing import Any


def iter_refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` value anywhere in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from iter_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_refs(item)


def resolve_pointer(document: Any, pointer: str) -> Any:
    """RFC 6901 JSON pointer (``/a/b~1c``); raises ``LookupError`` when it points nowhere."""
    node = document
    if pointer in ("", "/"):
        return node
    for raw in pointer.lstrip("/").split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise LookupError(pointer)
    return node


def unresolved_refs(documents: dict[str, bytes]) -> list[str]:
    """``file: $ref`` for every reference (local or to another document) that resolves to
    nothing; documents are the JSON ones of ``render_documents`` (or files read back)."""
    parsed = {
        path: json.loads(content) for path, content in documents.items() if path.endswith(".json")
    }
    broken = []
    for path, document in parsed.items():
        base = posixpath.dirname(path)
        for ref in iter_refs(document):
            target, _, pointer = ref.partition("#")
            if target:
                target_path = posixpath.normpath(posixpath.join(base, target))
                if target_path not in parsed:
                    broken.append(f"{path}: {ref}")
                    continue
                referenced = parsed[target_path]
            else:
                referenced = document
            try:
                resolve_pointer(referenced, pointer)
            except LookupError:
                broken.append(f"{path}: {ref}")
    return broken
