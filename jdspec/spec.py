"""A study spec: the pydantic models a spec file validates against, and loading one.

Reading the file and naming the line of a problem is jdspec/spec_yaml.py's; here a spec is
validated once, at load, and code past this point receives typed objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, ValidationError, create_model, model_validator

from jdspec.compress import COMPRESSORS
from jdspec.errors import SpecError
from jdspec.jobs import JOB_KINDS, SpecProblem
from jdspec.registry import unknown_name_message
from jdspec.spec_yaml import error_message, read_spec
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
    package: str = Field(description="Registry package that ships the weights (see the README).")
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
        raise SpecError(f"--set {where}: {error_message(item)}") from None


def load_spec(path: str | Path) -> Spec:
    """Read, expand sweeps and validate a spec file; every problem is a SpecError."""
    text = read_spec(Path(path))
    try:
        spec = Spec.model_validate(text.data)
    except ValidationError as error:
        raise text.invalid(error) from None
    problem = _job_kind_problem(spec)
    if problem is not None:
        raise text.error(problem.at, problem.message)
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
