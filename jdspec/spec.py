"""A study spec: pydantic models, and YAML loading whose errors name file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from jdspec.compress import COMPRESSORS
from jdspec.errors import SpecError
from jdspec.registry import unknown_name_message
from jdspec.tasks import SETTINGS
from jdspec.tasks.finetune import FineTuning


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


# Transfer modes hold, freeze or regrow exactly the weights magnitude pruning selects.
FINETUNE_METHODS = ("magnitude", "none")


class Spec(BaseModel, extra="forbid", frozen=True):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="Names the study in the store.")
    description: str = ""
    models: tuple[ModelRef, ...] = Field(min_length=1)
    compressors: tuple[CompressorParams, ...] = Field(
        min_length=1, description="Methods and sweeps; the dense baseline is always added."
    )
    spectrum: Spectrum
    metrics: tuple[str, ...] = Field((), description="Metrics to report; empty for all.")
    evaluation: Evaluation = Evaluation()
    finetuning: FineTuning | None = Field(
        None, description="Training of fine-tuning settings; the paper's recipe when absent."
    )

    @model_validator(mode="after")
    def _known_metrics(self) -> Spec:
        known = self.spectrum.metrics()
        for metric in self.metrics:
            if metric not in known:
                raise ValueError(unknown_name_message("metric", metric, list(known)))
        return self

    def training(self) -> FineTuning:
        """The fine-tuning recipe: the spec's, else the paper's defaults."""
        return self.finetuning or FineTuning()

    def reported_metrics(self) -> tuple[str, ...]:
        return self.metrics or self.spectrum.metrics()


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
        raise SpecError(f"{path}: expected a mapping of spec fields at the top, got {data!r:.60}")
    data, origins = _expand_sweeps(path, data, lines)
    _resolve_local_paths(path, data)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_describe(path, error, data, lines, origins)) from None
    _check_finetuning(path, spec, lines, origins)
    return spec


def _check_finetuning(path: Path, spec: Spec, lines: dict[tuple, int], origins: dict) -> None:
    """`finetuning:` only with a fine-tuning setting, whose compressors are magnitude or none."""
    setting = spec.spectrum.setting

    def fail(at: tuple, message: str) -> SpecError:
        at = _user_path(at, origins)
        return SpecError(f"{path}, line {_line(lines, at)}, {_dotted(at)}: {message}")

    if not SETTINGS.get(setting).finetunes:
        if spec.finetuning is not None:
            fine_tuned = [name for name, entry in SETTINGS.items() if entry.finetunes]
            raise fail(
                ("finetuning",),
                f"applies to the settings {', '.join(fine_tuned)}, not {setting!r}",
            )
        return
    for index, params in enumerate(spec.compressors):
        if params.method not in FINETUNE_METHODS:
            raise fail(
                ("compressors", index, "method"),
                f"setting {setting} fine-tunes with a magnitude mask; expected one of "
                f"{', '.join(FINETUNE_METHODS)}, got {params.method!r}",
            )


def _read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """The YAML data and the 1-based line of every mapping key and list item, by path."""
    if not path.exists():
        raise SpecError(f"{path}: no such spec file")
    if not path.is_file():
        raise SpecError(f"{path}: is a directory, expected a YAML spec file")
    text = path.read_text()
    try:
        return yaml.safe_load(text), _node_lines(yaml.compose(text, Loader=yaml.SafeLoader), ())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(f"{path}{where}: not valid YAML: {problem}") from None


def _node_lines(node: yaml.Node | None, at: tuple) -> dict[tuple, int]:
    if node is None:
        return {}
    lines = {at: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines |= _node_lines(value, (*at, key.value))
            lines[(*at, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines |= _node_lines(item, (*at, index))
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


def _resolve_local_paths(path: Path, data: dict) -> None:
    for model in data.get("models") or []:
        if isinstance(model, dict) and model.get("source") == "local" and "path" in model:
            model["path"] = str((path.parent / str(model["path"])).resolve())


def _describe(
    path: Path, error: ValidationError, data: dict, lines: dict[tuple, int], origins: dict
) -> str:
    """One paragraph: the first problem in full, then where the others are."""
    problems = []
    for item in error.errors():
        at = _user_path(_strip_tags(item["loc"], data), origins)
        if item["type"] in ("union_tag_invalid", "union_tag_not_found"):
            at = (*at, str((item.get("ctx") or {}).get("discriminator", "")).strip("'"))
        problems.append((_line(lines, at), _dotted(at), _message(item)))
    line, where, message = problems[0]
    text = f"{path}, line {line}, {where}: {message}"
    if len(problems) > 1:
        others = "; ".join(f"line {ln} {field}" for ln, field, _ in problems[1:4])
        text += f" (and {len(problems) - 1} more: {others})"
    return text


def _strip_tags(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union-member names ('magnitude', 'offline') from an error location."""
    kept, node = [], data
    for part in loc:
        is_tag = isinstance(node, dict) and isinstance(part, str) and part not in node
        if is_tag and part in {node.get("method"), node.get("setting"), node.get("source")}:
            continue
        kept.append(part)
        node = (
            node.get(part)
            if isinstance(node, dict)
            else (
                node[part]
                if isinstance(node, list) and isinstance(part, int) and part < len(node)
                else None
            )
        )
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


def _message(item: dict) -> str:
    kind, context = item["type"], item.get("ctx") or {}
    if kind == "union_tag_invalid":
        tag = str(context.get("discriminator", "")).strip("'")
        known = [t.strip(" '") for t in str(context.get("expected_tags", "")).split(",")]
        return unknown_name_message(tag, str(context.get("tag")), known)
    if kind == "extra_forbidden":
        return "unknown field (check its spelling and the method's documented fields)"
    message = item["msg"].removeprefix("Value error, ")
    if kind != "missing" and "input" in item and not isinstance(item["input"], dict | list):
        message += f" (got {item['input']!r})"
    return message
