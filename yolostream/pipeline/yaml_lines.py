"""YAML loading that remembers where every key came from, so config errors can name a line.

`load_yaml` returns the plain data (dicts, lists, scalars, as ``yaml.safe_load`` gives them) and a map
from key path to 1-based line, e.g. ``("sources", 1, "fps") -> 14``. `line_of` finds the line for a path
that may hold extra components the data does not have (pydantic puts union tags such as ``"int"`` in
its error locations) and falls back to the nearest enclosing key for a missing one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import yaml

from yolostream.errors import ConfigError

KeyPath = tuple[Hashable, ...]
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_yaml(text: str, source: str = "<config>") -> tuple[Any, dict[KeyPath, int]]:
    """Parse ``text``; returns (data, {key path: line}). ``${VAR}`` / ``${VAR:-default}`` in strings are
    replaced from the environment. Syntax errors and undefined variables raise `ConfigError` with the line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        context = ""
        if e.context and e.context_mark is not None and e.context_mark is not mark:
            context = f" ({e.context} started on line {e.context_mark.line + 1})"
        raise ConfigError(f"{where}: invalid YAML: {e.problem or e.context}{context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: invalid YAML: {e}") from None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {(): 1}
    if node is not None:
        _walk(loader, node, (), lines)
    return _expand_env(data, (), lines, source), lines


def read_yaml(path: str | os.PathLike[str]) -> tuple[Any, dict[KeyPath, int]]:
    """`load_yaml` of a file; a missing or unreadable file raises `ConfigError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from None
    return load_yaml(text, os.fspath(path))


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    # Construction has already flattened merge keys (<<) into node.value, so the walk sees them too.
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a complex key: nothing a config path can name
            key = loader.construct_object(key_node, deep=True)
            lines.setdefault((*path, key), key_node.start_mark.line + 1)
            _walk(loader, value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.setdefault((*path, i), item.start_mark.line + 1)
            _walk(loader, item, (*path, i), lines)


def _expand_env(value: Any, path: KeyPath, lines: dict[KeyPath, int], source: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, (*path, k), lines, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*path, i), lines, source) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        where = f"{source}:{line_of(lines, path)}"
        raise ConfigError(f"{where}: {format_path(path)}: environment variable {name} is not set")

    return _ENV.sub(sub, value)


def resolve(data: Any, loc: Sequence[Any]) -> KeyPath:
    """The longest part of ``loc`` that exists in ``data``, skipping components that are not keys or indices
    there but are followed by one that is (pydantic's union tags)."""
    out: list[Hashable] = []
    node = data
    for i, part in enumerate(loc):
        if _has(node, part):
            node = node[part]
            out.append(part)
        elif not (i + 1 < len(loc) and _has(node, loc[i + 1])):
            break
    return tuple(out)


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return isinstance(part, Hashable) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    """Line of ``path``, or of its nearest ancestor that has one (1 for the root)."""
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return 1


def format_path(path: Sequence[Any]) -> str:
    """``("sources", 1, "fps")`` -> ``sources[1].fps``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"
