"""Saving a zone or a line drawn in the dashboard back into the pipeline's YAML config file.

The file is edited as text, not re-dumped: only the characters of the one value change (found with
PyYAML's node marks), so comments, key order, ``${VAR}`` references and layout all stay as the operator
wrote them. The edited text must pass the same loader ``yolostream run`` uses (`load_config`) before it
replaces the file; the previous file is kept as ``<name>.bak``; the new one is written to a temporary file,
fsynced and renamed over the old one, so a crash leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import yaml

from yolostream.errors import ConfigError
from yolostream.pipeline.config import LoadedConfig, config_from_data
from yolostream.pipeline.yaml_lines import load_yaml

Table = Literal["zones", "lines"]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_lock = threading.Lock()  # one edit of a file at a time in this process


def _num(v: float) -> str:
    r = round(float(v), 1)  # a tenth of a pixel: finer than anyone draws
    return str(int(r)) if r == int(r) else repr(r)


def render_points(points: Sequence[Sequence[float]]) -> str:
    """``[[x, y], ...]`` as YAML flow text."""
    return "[" + ", ".join(f"[{_num(p[0])}, {_num(p[1])}]" for p in points) + "]"


def _key(name: str) -> str:
    # A name YAML would read as something else (true, 1e3, null) is written quoted.
    return name if yaml.safe_load(f"{name}: 0") == {name: 0} else f'"{name}"'


def _end(node: yaml.Node) -> int:
    """Index just after a node's last character: for block collections that is the end of their last child
    (their own end mark lies at the next token, past any comments in between)."""
    if isinstance(node, yaml.SequenceNode | yaml.MappingNode) and not node.flow_style and node.value:
        last = node.value[-1]
        return _end(last[1] if isinstance(node, yaml.MappingNode) else last)
    return node.end_mark.index


def _text(text: str, node: yaml.Node) -> str:
    return text[node.start_mark.index : _end(node)]


def _line_end(text: str, index: int) -> int:
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


def patch_text(text: str, table: Table, name: str, points: Sequence[Sequence[float]] | None) -> str:
    """``text`` with ``<table>.<name>`` set to ``points`` (None: the entry removed)."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"the config is not valid YAML: {e}") from None
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise ConfigError("only a config whose top level is a block mapping can be edited here")
    value = None if points is None else render_points(points)
    entry = f"{_key(name)}: {value}"
    head = next(((k, v) for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == table), None)
    section = None if head is None else head[1]
    if section is None or (isinstance(section, yaml.ScalarNode) and section.value in ("", "~", "null")):
        if value is None:
            raise ConfigError(f"{table} has no entry {name!r}")
        if head is None:
            sep = "" if not text or text.endswith("\n") else "\n"
            return f"{text}{sep}{table}:\n  {entry}\n"
        assert section is not None
        if section.start_mark.index == section.end_mark.index:  # `zones:` and nothing: after the colon
            at = text.index(":", head[0].end_mark.index) + 1
            return text[:at] + " {" + entry + "}" + text[at:]
        return text[: section.start_mark.index] + "{" + entry + "}" + text[section.end_mark.index :]
    if not isinstance(section, yaml.MappingNode):
        raise ConfigError(f"{table} must be a mapping of name -> points")
    pairs = [(k, v) for k, v in section.value if isinstance(k, yaml.ScalarNode)]
    found = next(((k, v) for k, v in pairs if k.value == name), None)
    if section.flow_style:  # {a: [...], b: [...]}: rewrite the mapping, keeping the other entries' text
        items = [f"{_text(text, k)}: {_text(text, v)}" for k, v in pairs]
        if found is not None:
            i = pairs.index(found)
            items = items[:i] + ([entry] if value is not None else []) + items[i + 1 :]
        elif value is not None:
            items.append(entry)
        else:
            raise ConfigError(f"{table} has no entry {name!r}")
        return text[: section.start_mark.index] + "{" + ", ".join(items) + "}" + text[_end(section) :]
    if found is not None:
        key, node = found
        if value is not None and isinstance(node, yaml.CollectionNode) and not node.flow_style:
            # A block list may sit at the key's own indentation; flow text there would not parse: the new
            # value goes on the key's line, and whatever stood between (a comment) stays.
            colon = text.index(":", key.end_mark.index) + 1
            between = text[colon : node.start_mark.index]
            return text[:colon] + " " + value + (between.rstrip() if between.strip() else "") + text[_end(node) :]
        if value is not None:
            return text[: node.start_mark.index] + value + text[_end(node) :]
        if len(pairs) == 1:  # the last entry (and its line's comment): the section becomes {}, not null
            return text[: section.start_mark.index] + "{}\n" + text[_line_end(text, _end(section)) :]
        start = key.start_mark.index - key.start_mark.column  # from the start of the key's line
        return text[:start] + text[_line_end(text, _end(node)) :]
    if value is None:
        raise ConfigError(f"{table} has no entry {name!r}")
    last_key, last_value = pairs[-1]
    at = _line_end(text, _end(last_value))
    pad = " " * last_key.start_mark.column
    prefix = "" if text[:at].endswith("\n") else "\n"
    return text[:at] + prefix + pad + entry + "\n" + text[at:]


def validate_text(text: str, path: Path) -> LoadedConfig:
    """``text`` through the loader ``yolostream run`` uses, as if it were the file at ``path``."""
    data, lines = load_yaml(text, str(path))
    return config_from_data(data, lines, str(path), base_dir=path.parent)


def _write_atomic(path: Path, text: str, mode_of: Path) -> None:
    """``text`` into ``path`` by a fsynced temporary file renamed over it, with ``mode_of``'s permissions."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        shutil.copymode(mode_of, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def save_geometry(
    path: Path,
    table: Table,
    name: str,
    points: Sequence[Sequence[float]] | None,
    check: Callable[[LoadedConfig], None] | None = None,
) -> tuple[LoadedConfig, Path]:
    """Set (or, with None, remove) ``<table>.<name>`` in the config file; returns the validated new config
    and the backup's path. Raises `ConfigError` (file untouched) when the result would not load, or when
    ``check`` (say, the rules' class names against the running model) raises it."""
    if not NAME.match(name):
        raise ConfigError(f"name {name!r} must match {NAME.pattern}")
    with _lock:
        try:
            old = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e}") from None
        new = patch_text(old, table, name, points)
        loaded = validate_text(new, path)
        got = getattr(loaded.config, table).get(name)
        want = None if points is None else [tuple(float(_num(c)) for c in p) for p in points]
        if (list(got) if got is not None else None) != want:  # the edit must say exactly what was asked
            raise ConfigError(f"editing {table}.{name} did not give the expected value (got {got!r})")
        if check is not None:
            check(loaded)
        backup = path.with_name(path.name + ".bak")
        _write_atomic(backup, old, path)
        _write_atomic(path, new, path)
    return loaded, backup
