"""What a run was made with: stored beside results, never in a cell key."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jdspec

PACKAGES = (
    "torch",
    "transformers",
    "datasets",
    "duckdb",
    "numpy",
    "scipy",
    "pydantic",
    "safetensors",
    "gguf",
    "accelerate",
)


def git_sha() -> str:
    """The commit of the jd source tree, with '-dirty' when it has local changes; '' outside git."""
    source = Path(jdspec.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return sha + ("-dirty" if dirty.strip() else "")


def package_versions() -> str:
    """JSON of the installed versions of the packages that shape results."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return json.dumps(versions, sort_keys=True)


def device_description(device: str) -> str:
    """'cpu (N threads)' or the CUDA device's name, for the device a run resolves to."""
    import torch

    from jdspec.models import resolve_device

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return f"{resolved} ({torch.cuda.get_device_name(resolved)})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"


def describe_run() -> dict[str, str]:
    return {
        "host": socket.gethostname(),
        "jd_version": jdspec.__version__,
        "git_sha": git_sha(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
    }
