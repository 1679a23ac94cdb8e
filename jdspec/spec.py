"""A study spec: pydantic models, and YAML loading whose errors name file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model, model_validator

from jdspec.compress import COMPRESSORS
from jdspec.errors import SpecError
from jdspec.jobs import JOB_KINDS, SpecProblem
from jdspec.registry import unknown_name_message
from jdspec.tasks import SETTINGS


class HubModel(BaseModel, extra="forbid", frozen=True):
    source: Literal["hub"]
    id: str = Field(description="Hub id, e.g. lmsys/vicuna-7b-v1.3.")
    revision: str = Field("main", description="Branch, tag or commit; pin a commit to reproduce.")

    def label(self) -> str:
        return self.id


class LocalModel(BaseModel, extra="forbid", frozen=True):
    source: Literal["local"]
    path: str = Field(description="A transformers folder; relative paths start at the spec file.")

    def label(self) -> str:
        return Path(self.path).name


class OfflineModel(BaseModel, extra="forbid", frozen=True):
    source: Literal["offline"]
    package: str = Field(description="Registry package that ships the weights (OFFLINE.md).")
    version: str = Field(description="Its exact version: part of the cell key.")
    files: tuple[str, ...] = Field(
        min_length=1,
        description="Paths inside the package: one GGUF, a split one's chunks, or a "
        "transformers folder.",
    )

    def label(self) -> str:
        """The GGUF file's stem, or the package's name for a shipped folder."""
        name = Path(self.files[0]).name
        return name.split(".")[0] if "." in name else self.package


ModelRef = Annotated[HubModel | LocalModel | OfflineModel, Field(discriminator="source")]


def _tagged_union(models: list[type], tag: str) -> Any:
    return Annotated[Union[tuple(models)], Field(discriminator=tag)]  # noqa: UP007


CompressorParams = _tagged_union([c.params_model for _, c in COMPRESSORS.items()], "method")
Spectrum = _tagged_union([s.spectrum_model for _, s in SETTINGS.items()], "setting")


class Evaluation(BaseModel, extra="forbid", frozen=True):
    n_examples: int | None = Field(100, ge=1, description="Questions per level; null for all.")
    seed: int = Field(0, description="Seeds the sample of questions and the dropped options.")
    batch_size: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        8, description='Sequences per forward pass, or "auto" (largest that fits); in the cell key.'
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Eval dtype.")
    device: str = Field("auto", description="auto (cuda if present, else cpu), cpu, cuda, cuda:1.")


_STRING_TAG, _MERGE_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"


class StudyFields(BaseModel, extra="forbid", frozen=True):
    """What every spec holds; `Spec` adds the sections of job kinds (`finetuning:`)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Names the study in the store.")
    description: str = ""
    models: tuple[ModelRef, ...] = Field(min_length=1)
    compressors: tuple[CompressorParams, ...] = Field(
        min_length=1, description="Methods and sweeps; the dense baseline is always added."
    )
    spectrum: Spectrum
    metrics: tuple[str, ...] = Field((), description="Metrics to report; empty for all.")
    evaluation: Evaluation = Evaluation()

    @model_validator(mode="after")
    def _known_metrics(self) -> StudyFields:
        known = self.spectrum.metrics()
        for metric in self.metrics:
            if metric not in known:
                raise ValueError(unknown_name_message("metric", metric, list(known)))
        return self

    def reported_metrics(self) -> tuple[str, ...]:
        return self.metrics or self.spectrum.metrics()


def _with_job_sections() -> type[StudyFields]:
    """StudyFields plus, for each job kind with a section, that section (absent: None)."""
    sections: dict[str, Any] = {
        kind.section.name: (
            kind.section.model | None,
            Field(None, description=kind.section.description),
        )
        for _, kind in JOB_KINDS.items()
        if kind.section is not None
    }
    return create_model("Spec", __base__=StudyFields, __module__=__name__, **sections)


Spec = _with_job_sections()


def compressor_from_options(method: str, values: dict[str, Any]) -> Any:
    """A method's params from command-line `--set key=value` pairs, errors naming the key."""
    if method not in COMPRESSORS.names():
        raise SpecError("--method: " + unknown_name_message("method", method, COMPRESSORS.names()))
    model = COMPRESSORS.get(method).params_model
    try:
        return model.model_validate({**values, "method": method})
    except ValidationError as error:
        item = error.errors()[0]
        where = ".".join(str(part) for part in item["loc"]) or "(all)"
        raise SpecError(f"--set {where}: {_message(item)}") from None


def load_spec(path: str | Path) -> Spec:
    """Read, expand sweeps and validate a spec file; every problem is a SpecError."""
    path = Path(path)
    data, lines = _read_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(
            f"{path}, line {_line(lines, ())}, (top level): expected a mapping of spec fields "
            f"(name, models, compressors, spectrum, ...), got {type(data).__name__} {data!r:.60}"
        )
    data, origins = _expand_sweeps(path, data, lines)
    _resolve_local_paths(path, data, lines)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_describe(path, error, data, lines, origins)) from None
    problem = _job_kind_problem(spec)
    if problem is not None:
        at = _user_path(problem.at, origins)
        raise SpecError(f"{path}, line {_line(lines, at)}, {_dotted(at)}: {problem.message}")
    return spec


def _job_kind_problem(spec: Spec) -> SpecProblem | None:
    """A job kind's section given in a spec of another kind's setting, or the first problem the
    spec's own job kind finds (a compressor it cannot run)."""
    setting = spec.spectrum.setting
    kind_name = SETTINGS.get(setting).job_kind
    for name, kind in JOB_KINDS.items():
        if kind.section and name != kind_name and getattr(spec, kind.section.name) is not None:
            settings = [other for other, entry in SETTINGS.items() if entry.job_kind == name]
            return SpecProblem(
                (kind.section.name,),
                f"applies to the settings {', '.join(settings)}, not {setting!r}",
            )
    problems = JOB_KINDS.get(kind_name).check(spec)
    return problems[0] if problems else None


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
        message = _message(item, quote_input=False)
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


def _message(item: dict, quote_input: bool = True) -> str:
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
