"""Reading a spec file: YAML with the line of every field, sweeps expanded into one compressor
entry per value, local paths resolved, and error text that names file, line and field.

Validation itself is pydantic's (jdspec/spec.py); this module turns its errors, and any other
problem found at a field, into one paragraph pointing at the user's own line, also when the
field was made by expanding a sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from jdspec.compress import COMPRESSORS
from jdspec.errors import SpecError
from jdspec.registry import unknown_name_message

_STRING_TAG, _MERGE_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class SpecText:
    """A spec file's data as read, and where each of its fields is, to name lines in errors."""

    path: Path
    data: dict
    lines: dict[tuple, int]  # the 1-based line of every mapping key and list item, by path
    origins: dict[int, tuple]  # expanded compressor index -> (entry, swept field, value index)

    def error(self, at: tuple, message: str) -> SpecError:
        """A SpecError at the field `at`, a path in the expanded data."""
        at = _user_path(at, self.origins)
        return SpecError(f"{self.path}, line {_line(self.lines, at)}, {_dotted(at)}: {message}")

    def invalid(self, error: ValidationError) -> SpecError:
        """pydantic's errors as one SpecError: the first in full, then where the others are."""
        return SpecError(_describe(self.path, error, self.data, self.lines, self.origins))


def read_spec(path: Path) -> SpecText:
    """Read a spec file, expand its sweeps and resolve its local paths; every problem found
    before validation is a SpecError."""
    data, lines = _read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(
            f"{path}, line {_line(lines, ())}, (top level): expected a mapping of spec fields "
            f"(name, models, compressors, spectrum, ...), got {type(data).__name__} {data!r:.60}"
        )
    data, origins = _expand_sweeps(path, data, lines)
    _resolve_local_paths(path, data, lines)
    return SpecText(path, data, lines, origins)


def _read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """The YAML data and the 1-based line of every mapping key and list item, by path."""
    loader = yaml.SafeLoader(_read_text(path))
    try:
        node = loader.get_single_node()  # what yaml.safe_load does, keeping the node's lines
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        context, opened = getattr(error, "context", None), getattr(error, "context_mark", None)
        if context and opened and (not mark or opened.line != mark.line):
            problem += f" ({context} on line {opened.line + 1})"
        raise SpecError(f"{path}{where}: not valid YAML: {problem}") from None
    except RecursionError:  # PyYAML and the walks below recurse once per level of nesting
        raise SpecError(f"{path}: lists or mappings nested too deeply to be a spec") from None
    finally:
        loader.dispose()
    if data is None:
        raise SpecError(f"{path}: the file holds no spec (empty, or only comments)")
    try:
        _check_keys(path, node, ())
        return data, _node_lines(node, ())
    except RecursionError:
        raise SpecError(f"{path}: lists or mappings nested too deeply to be a spec") from None


def _check_keys(path: Path, node: yaml.Node, at: tuple, seen: set[int] | None = None) -> None:
    """Field names must be text (YAML reads an unquoted `1:`, `true:` or `null:` as another
    type, which validation would report with no line) and given once (YAML keeps the last)."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    children, first_lines = [], {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            where, line = (*at, key.value), key.start_mark.line + 1
            if key.tag not in (_STRING_TAG, _MERGE_TAG):
                kind = key.tag.rsplit(":", 1)[-1]
                raise SpecError(
                    f"{path}, line {line}, {_dotted(where)}: a field name must be text; YAML "
                    f"reads {key.value!r} as {kind} (quote it, or check the spelling)"
                )
            if key.value in first_lines:  # YAML would silently keep only the last one
                raise SpecError(
                    f"{path}, line {line}, {_dotted(where)}: given twice (first on line "
                    f"{first_lines[key.value]}); keep one"
                )
            first_lines[key.value] = line
            children.append((value, where))
    elif isinstance(node, yaml.SequenceNode):
        children = [(item, (*at, index)) for index, item in enumerate(node.value)]
    for child, child_at in children:
        _check_keys(path, child, child_at, seen)


def _read_text(path: Path) -> str:
    """The file as UTF-8 text (YAML's encoding), or a SpecError saying why it cannot be read."""
    if not path.exists():
        raise SpecError(f"{path}: no such spec file")
    if path.is_dir():
        raise SpecError(f"{path}: is a directory, expected a YAML spec file")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SpecError(f"{path}: cannot read the spec file ({error.strerror or error})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SpecError(
            f"{path}, line {line}: not UTF-8 text (byte {raw[error.start]:#04x} at offset "
            f"{error.start}); save the spec as UTF-8"
        ) from None


def _node_lines(
    node: yaml.Node | None, at: tuple, seen: set[int] | None = None
) -> dict[tuple, int]:
    """Lines by path; a node reached again through an alias is not walked again, so a
    self-referencing alias (`a: &x [*x]`) ends and shared ones cost no more than once."""
    seen = set() if seen is None else seen
    if node is None:
        return {}
    lines = {at: node.start_mark.line + 1}
    if id(node) in seen:
        return lines
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines |= _node_lines(value, (*at, key.value), seen)
            lines[(*at, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines |= _node_lines(item, (*at, index), seen)
    return lines


def _expand_sweeps(
    path: Path, data: dict, lines: dict[tuple, int]
) -> tuple[dict, dict[int, tuple]]:
    """Turn each `sweep: {field: [values]}` into one compressor entry per value.

    Returns the data with expanded compressors and, per expanded index, where it came from
    (original index, swept field, value index) so errors point at the user's own lines.
    """
    entries = data.get("compressors")
    if not isinstance(entries, list):
        return data, {}
    expanded, origins = [], {}
    for index, entry in enumerate(entries):
        if not (isinstance(entry, dict) and "sweep" in entry):
            origins[len(expanded)] = (index, None, None)
            expanded.append(entry)
            continue
        field, values = _sweep_field(path, entry, ("compressors", index), lines)
        fixed = {key: value for key, value in entry.items() if key != "sweep"}
        for value_index, value in enumerate(values):
            origins[len(expanded)] = (index, field, value_index)
            expanded.append({**fixed, field: value})
    return {**data, "compressors": expanded}, origins


def _sweep_field(path: Path, entry: dict, at: tuple, lines: dict[tuple, int]) -> tuple[str, list]:
    sweep, method = entry["sweep"], entry.get("method")

    def fail(where: tuple, message: str) -> SpecError:
        return SpecError(f"{path}, line {_line(lines, where)}, {_dotted(where)}: {message}")

    if method not in COMPRESSORS.names():
        raise fail(
            (*at, "method"), unknown_name_message("method", str(method), COMPRESSORS.names())
        )
    allowed = COMPRESSORS.get(method).strength_fields
    if not allowed:
        raise fail((*at, "sweep"), f"method {method!r} has no strength to sweep")
    if not (isinstance(sweep, dict) and len(sweep) == 1):
        raise fail((*at, "sweep"), f"expected one of {', '.join(allowed)} mapped to a list")
    field, values = next(iter(sweep.items()))
    if field not in allowed:
        raise fail((*at, "sweep", field), f"{method} sweeps one of {', '.join(allowed)}")
    if field in entry:
        raise fail((*at, field), f"{field} is both fixed and swept")
    if not isinstance(values, list) or not values:
        raise fail((*at, "sweep", field), "expected a non-empty list of values")
    return field, values


def _resolve_local_paths(path: Path, data: dict, lines: dict[tuple, int]) -> None:
    models = data.get("models")
    for index, model in enumerate(models if isinstance(models, list) else []):
        # Only a string: anything else is left for validation to name as the wrong type.
        if isinstance(model, dict) and model.get("source") == "local":
            if not isinstance(model.get("path"), str):
                continue
            try:
                model["path"] = str((path.parent / model["path"]).resolve())
            except (OSError, ValueError, RuntimeError) as error:  # a NUL byte, a symlink loop
                at = ("models", index, "path")
                raise SpecError(
                    f"{path}, line {_line(lines, at)}, {_dotted(at)}: not a usable path ({error})"
                ) from None


def _describe(
    path: Path, error: ValidationError, data: dict, lines: dict[tuple, int], origins: dict
) -> str:
    """One paragraph: the first problem in full, then where the others are. Problems at one
    place (a value matching no member of a union such as `int | "auto"`) read as alternatives."""
    items = error.errors()
    problems: dict[tuple[int, str], list[str]] = {}
    inputs: dict[tuple[int, str], Any] = {}
    for item in items:
        if _follows_from_another(item, items):
            continue
        at = _user_path(_strip_tags(item["loc"], data), origins)
        if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            at = (*at, str((item.get("ctx") or {}).get("discriminator", "")).strip("'"))
        place = (_line(lines, at), _dotted(at))
        message = error_message(item, quote_input=False)
        if message not in problems.setdefault(place, []):
            problems[place].append(message)
        inputs.setdefault(place, item)
    (line, where), messages = next(iter(problems.items()))
    text = (
        f"{path}, line {line}, {where}: {_with_input('; or '.join(messages), inputs[line, where])}"
    )
    others = list(problems)[1:]
    if others:
        listed = "; ".join(f"line {other_line} {field}" for other_line, field in others[:3])
        text += f" (and {len(others)} more: {listed})"
    return text


def _follows_from_another(item: dict, items: list[dict]) -> bool:
    """A list's 'too short after validation' merely repeats that one of its items failed."""
    loc = item["loc"]
    return item["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and other["loc"][: len(loc)] == loc for other in items
    )


_ABSENT = object()  # below a key the spec does not have


def _strip_tags(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union-member names from an error location: a tagged union's tag
    ('magnitude', 'offline'), and a plain union's member ('constrained-int', "literal['auto']"),
    which follows a value that has no fields of its own."""
    kept, node = [], data
    for part in loc:
        is_tag = isinstance(node, dict) and isinstance(part, str) and part not in node
        # A tuple, not a set: a mistyped tag may be a list or mapping, which cannot be hashed.
        if is_tag and part in (node.get("method"), node.get("setting"), node.get("source")):
            continue
        if isinstance(part, str) and node is not _ABSENT and not isinstance(node, dict):
            continue
        kept.append(part)
        if isinstance(node, dict):
            node = node.get(part, _ABSENT)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = _ABSENT
    return tuple(kept)


def _user_path(at: tuple, origins: dict) -> tuple:
    """Map an expanded compressor index back to the spec's own entry and sweep value."""
    if len(at) < 2 or at[0] != "compressors" or at[1] not in origins:
        return at
    index, field, value_index = origins[at[1]]
    rest = at[2:]
    if field is not None and rest[:1] == (field,):
        return ("compressors", index, "sweep", field, value_index, *rest[1:])
    return ("compressors", index, *rest)


def _line(lines: dict[tuple, int], at: tuple) -> int:
    while at not in lines and at:
        at = at[:-1]
    return lines.get(at, 1)


def _dotted(at: tuple) -> str:
    text = ""
    for part in at:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def error_message(item: dict, quote_input: bool = True) -> str:
    """One pydantic error item as the text after "file, line, field: "."""
    kind, context = item["type"], item.get("ctx") or {}
    if kind == "union_tag_invalid":
        tag = str(context.get("discriminator", "")).strip("'")
        known = [t.strip(" '") for t in str(context.get("expected_tags", "")).split(",")]
        return unknown_name_message(tag, str(context.get("tag")), known)
    if kind == "extra_forbidden":
        return "unknown field (check its spelling and the method's documented fields)"
    if kind == "too_short":
        least, given = context.get("min_length", 1), context.get("actual_length") or "none"
        return f"expected at least {least} item{'s' if least != 1 else ''}, got {given}"
    message = item["msg"].removeprefix("Value error, ")
    return _with_input(message, item) if quote_input else message


def _with_input(message: str, item: dict) -> str:
    """The message and the value given, unless it already quotes it (or it is a structure)."""
    if item["type"] in ("missing", "extra_forbidden") or "input" not in item:
        return message
    value = item["input"]
    if isinstance(value, dict | list) or repr(value) in message or f"got {value}" in message:
        return message
    return f"{message} (got {value!r})"
