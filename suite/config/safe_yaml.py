"""YAML for scenario files: PyYAML's safe loader, bounded before anything is expanded.

A few hundred bytes of YAML can describe gigabytes: anchors whose aliases repeat each other
("billion laughs"), or nesting that overflows the stack. This loader refuses, with the key path
where it happens: files over MAX_FILE_BYTES, nesting deeper than MAX_DEPTH, a document whose
aliases would expand it past MAX_EXPANDED (counted on the node graph, never by expanding it),
an alias that contains itself, and a key written twice in one mapping (PyYAML keeps the last).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_EXPANDED = 1_000_000  # nodes plus characters of scalars, once aliases are expanded
MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlLimit(ValueError):
    """A scenario file past one of the limits above: `path` is the key path, `line` 1-based."""

    def __init__(self, path: tuple, line: int | None, message: str):
        self.path, self.line, self.message = tuple(path), line, message
        super().__init__(message)


class BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: Any):
        super().__init__(stream)
        self._path: list[Any] = []

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._path.append(index)
        try:
            if len(self._path) > MAX_DEPTH:
                raise YamlLimit(key_path(self._path)[:6], self.peek_event().start_mark.line + 1,
                                f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            refuse_duplicate_keys(self, node)
        return super().construct_mapping(node, deep)


def key_path(parts: list) -> tuple:
    """The composer's (parent, index) trail as a key path: mapping keys by name, list items by number."""
    return tuple(p.value if isinstance(p, ScalarNode) else p for p in parts if isinstance(p, (ScalarNode, int)))


def refuse_duplicate_keys(loader: BoundedLoader, node: MappingNode) -> None:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG or not isinstance(key_node, ScalarNode):
            continue  # merged keys may be overridden; a complex key is PyYAML's to judge
        key = loader.construct_object(key_node)
        if key in seen:
            raise YamlLimit((key,), key_node.start_mark.line + 1, f"key {str(key)[:80]!r} is written twice in one mapping")
        seen.add(key)


def load(text: str) -> Any:
    """The document in `text`, or YamlLimit / yaml.YAMLError."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise YamlLimit((), None, f"larger than {MAX_FILE_BYTES // 1024} KiB: not a scenario file")
    loader = BoundedLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        check_expanded_size(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def children(node: Any) -> list:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def expanded_sizes(root: Any) -> dict[int, int]:
    """Each node's size with aliases expanded (1 per node, plus a scalar's length), by id, computed
    once per node by an explicit-stack depth-first walk; an alias inside its own anchor is refused."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            on_path.discard(id(node))
            own = 1 + (len(node.value) if isinstance(node, ScalarNode) else 0)
            sizes[id(node)] = own + sum(sizes[id(child)] for child in children(node))
            continue
        if id(node) in sizes:
            continue
        if id(node) in on_path:
            raise YamlLimit((), node.start_mark.line + 1, "an alias refers to the anchor it is inside of")
        on_path.add(id(node))
        stack.append((node, True))
        stack += [(child, False) for child in children(node) if id(child) not in sizes]
    return sizes


def check_expanded_size(root: Any) -> None:
    sizes = expanded_sizes(root)
    if sizes[id(root)] <= MAX_EXPANDED:
        return
    path, node = [], root
    while True:  # down to the smallest part that is too large alone, to name its key
        if isinstance(node, MappingNode):
            big = [(k, v) for k, v in node.value if sizes[id(v)] > MAX_EXPANDED]
            if not big:
                break
            path.append(big[0][0].value if isinstance(big[0][0], ScalarNode) else "?")
            node = big[0][1]
        elif isinstance(node, SequenceNode):
            big = [(i, v) for i, v in enumerate(node.value) if sizes[id(v)] > MAX_EXPANDED]
            if not big:
                break
            path.append(big[0][0])
            node = big[0][1]
        else:
            break
    raise YamlLimit(tuple(path), node.start_mark.line + 1,
                    f"its aliases expand to over {MAX_EXPANDED:,} nodes and characters: not a scenario")
