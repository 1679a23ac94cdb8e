"""Spec loading under hostile input: every bad spec is one SpecError naming file, line and field.

Part one mutates valid specs at random (hypothesis) and calls `load_spec`; part two runs a corpus
of hand-made bad files through `jd plan`, `jd run` and `jd report`, which must exit 2 with one
paragraph naming the file (and line and field where it parses) and leave the store as it was.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from jdspec.cli import app
from jdspec.errors import SpecError
from jdspec.spec import Spec, load_spec
from tests.conftest import tiny_spec
from tests.test_spec import GOOD

SPECS = Path(__file__).parent.parent / "specs"
# Valid starting points: a hub k-shot study, the tiny local study, a fine-tuning study, and one
# with every compressor.
BASES = [
    yaml.safe_load(GOOD),
    tiny_spec(Path("models/tiny")),
    yaml.safe_load((SPECS / "setting1-offline.yaml").read_text()),
    yaml.safe_load((SPECS / "methods-offline.yaml").read_text()),
]
FIELDS = set(Spec.model_fields)
# "<file>, line <n>, <field path>: <what was expected>"
LOCATED = re.compile(r", line (\d+), (\(top level\)|[^\s:]+): \S")

WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.sampled_from([-1, 0, 1, 2**63, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["9:8", "0:4", "2:4", "-1:4", "auto", "wand", "mmlux", "kshot", "", "1e400"]),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
    st.just([]),
    st.just({}),
    st.dictionaries(st.sampled_from(["method", "x", "source", "name"]), st.text(max_size=5)),
)

# Misspelt and misplaced keys, and keys YAML reads as numbers, booleans or null.
UNKNOWN_KEYS = st.sampled_from(["extra", "Method", "levles", "sweep", "spectrum", 1, True, None])


def _paths(node: Any, at: tuple = ()) -> list[tuple]:
    """Every key path and list index path below `node`, the root excluded."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return []
    found = []
    for key, child in items:
        found.append((*at, key))
        found.extend(_paths(child, (*at, key)))
    return found


def _parent(data: dict, at: tuple) -> Any:
    node = data
    for part in at[:-1]:
        node = node[part]
    return node


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict:
    """A valid spec with one to three mutations: a key deleted, a value replaced by one of a
    wrong type or range, an unknown key added, a value emptied, wrapped in a list or repeated."""
    data = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(data)
        if not paths:
            break
        at = draw(st.sampled_from(paths))
        parent, last = _parent(data, at), at[-1]
        action = draw(
            st.sampled_from(
                ["delete", "replace", "replace", "unknown_key", "empty", "wrap", "repeat"]
            )
        )
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(WRONG_VALUES)
        elif action == "unknown_key" and isinstance(parent, dict):
            parent[draw(UNKNOWN_KEYS)] = draw(WRONG_VALUES)
        elif action == "empty":
            parent[last] = draw(st.sampled_from([[], {}, None, ""]))
        elif action == "wrap":  # a list where a value or a mapping is expected
            parent[last] = [parent[last]]
        elif action == "repeat" and isinstance(parent, list):  # a repeated level or compressor
            parent.append(copy.deepcopy(parent[last]))
    return data


def _check_outcome(path: Path) -> None:
    """A valid Spec, or a SpecError starting with the file and naming line and field."""
    try:
        assert isinstance(load_spec(path), Spec)
    except SpecError as error:
        message = str(error)
        assert message.startswith(str(path)), message
        located = LOCATED.search(message)
        assert located, message
        assert int(located[1]) >= 1
        root = re.split(r"[.\[]", located[2])[0]  # a field the spec lacks, or one it has
        assert root in FIELDS | {"(top level)"} or root in path.read_text(), message
        assert "\n" not in message, message


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=mutated_specs())
def test_mutated_specs_load_or_name_line_and_field(tmp_path: Path, data: dict) -> None:
    path = tmp_path / "fuzzed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    _check_outcome(path)


# The tiny study (tests/conftest.py) written out by hand, so each line number below is known;
# MODEL_DIR becomes the tiny model's folder.
BASE = """\
name: tiny
models:
  - source: local
    path: MODEL_DIR
compressors:
  - method: magnitude
    sweep:
      sparsity: [0.3, 0.6]
  - method: magnitude
    mask_structure: "2:4"
spectrum:
  setting: option_count
  dataset: {name: arc_easy}
  answer_format: cloze
  levels: [{option_count: 2}, {option_count: 4}]
evaluation: {n_examples: 12, batch_size: 4}
"""
FINETUNING = (SPECS / "setting1-offline.yaml").read_text()
LEVELS = "levels: [{option_count: 2}, {option_count: 4}]"

# (id, base, text replaced, replacement, what the message must say): each a one-edit bad spec.
EDITS = [
    ("wrong type", BASE, "batch_size: 4", "batch_size: four", ["line 16", "evaluation.batch_size"]),
    ("negative n_examples", BASE, "n_examples: 12", "n_examples: -1", ["line 16", "n_examples"]),
    ("zero batch_size", BASE, "batch_size: 4", "batch_size: 0", ["line 16", "batch_size"]),
    ("float for an int", BASE, "n_examples: 12", "n_examples: 1.5", ["line 16", "n_examples"]),
    (
        "unknown method",
        BASE,
        '  - method: magnitude\n    mask_structure: "2:4"',
        '  - method: prune\n    mask_structure: "2:4"',
        ["line 9", "compressors[1].method", "unknown method 'prune'"],
    ),
    ("empty sweep", BASE, "[0.3, 0.6]", "[]", ["line 8", "compressors[0].sweep.sparsity"]),
    (
        "negative sparsity",
        BASE,
        "[0.3, 0.6]",
        "[-0.3, 0.6]",
        ["line 8", "compressors[0].sweep.sparsity[0]", "-0.3"],
    ),
    (
        "no compressors",
        BASE,
        BASE[BASE.index("compressors:") : BASE.index("spectrum:")],
        "compressors: []\n",
        ["line 5", "compressors"],
    ),
    ("no levels", BASE, LEVELS, "levels: []", ["line 15", "spectrum.levels"]),
    ("N > M", BASE, '"2:4"', '"5:4"', ["line 10", "compressors[1].mask_structure", "5:4"]),
    ("unquoted N:M", BASE, '"2:4"', "2:4", ["line 10", "compressors[1].mask_structure", "124"]),
    ("unknown dataset", BASE, "arc_easy", "arc_hard", ["line 13", "spectrum.dataset.name"]),
    (
        "unknown setting",
        BASE,
        "setting: option_count",
        "setting: options",
        ["line 12", "spectrum.setting", "options"],
    ),
    (
        "unknown field",
        BASE,
        "    path: MODEL_DIR",
        "    path: MODEL_DIR\n    revison: main",
        ["line 5", "models[0].revison", "unknown field"],
    ),
    ("a number as a field name", BASE, "name: tiny", "name: tiny\n1: x", ["line 2", "text"]),
    (
        "a field given twice",
        BASE,
        "name: tiny",
        "name: tiny\nname: x",
        ["line 2", "twice", "line 1"],
    ),
    ("markup-like value", BASE, "name: tiny", "name: '[/x]'", ["line 1", "name", "[/x]"]),
    (
        "a NUL byte in a path",
        BASE,
        "path: MODEL_DIR",
        'path: "a\\0b"',
        ["line 4", "models[0].path"],
    ),
    (
        "self-referencing alias",
        BASE,
        "name: tiny",
        "name: tiny\nmetrics: &loop [*loop]",
        ["line 2", "metrics[0]"],
    ),
    (
        "YAML syntax error",
        BASE,
        LEVELS,
        "levels: [{option_count: 2}",
        ["line 16", "not valid YAML"],
    ),
    ("a tab", BASE, "  answer_format", "\tanswer_format", ["line 14", "not valid YAML"]),
    (
        "finetuning on a setting that does not train",
        BASE,
        "name: tiny",
        "name: tiny\nfinetuning: {epochs: 2}",
        ["line 2", "finetuning", "option_count"],
    ),
    (
        "a fine-tuning setting misspelt",
        FINETUNING,
        "setting: data_adequacy",
        "setting: data_adequacy_",
        ["spectrum.setting", "data_adequacy_"],
    ),
    ("zero fine-tuning epochs", FINETUNING, "  epochs: 3", "  epochs: 0", ["finetuning.epochs"]),
    (
        "a transfer mode that is the baseline",
        FINETUNING,
        "transfer: [sparse]",
        "transfer: [dense]",
        ["finetuning.transfer", "baseline"],
    ),
    (
        "a fine-tuning study pruned by wanda",
        FINETUNING,
        "  - method: magnitude\n    scope: global",
        "  - method: wanda",
        ["compressors[0].method", "magnitude mask"],
    ),
]
# (id, the file's bytes, what the message must say); "directory" and "missing" name no bytes.
FILES = [
    ("a directory", "directory", ["is a directory"]),
    ("a missing file", "missing", ["no such spec file"]),
    ("an empty file", b"", ["holds no spec"]),
    ("only comments", b"# to do\n", ["holds no spec"]),
    ("only a scalar", b"42\n", ["line 1", "(top level)", "42"]),
    ("a list", b"- name: tiny\n", ["line 1", "(top level)", "list"]),
    ("not UTF-8", b"name: tiny\ndescription: caf\xe9\n", ["line 2", "UTF-8"]),
    ("two documents", b"name: a\n---\nname: b\n", ["line 2", "not valid YAML"]),
    ("nested 500 deep", b"name: a\nmodels: " + b"[" * 500 + b"]" * 500, ["too deeply"]),
]
COMMANDS = ["plan", "run", "report"]
runner = CliRunner()


@pytest.fixture(scope="module")
def existing_store(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A store written by a real (one-cell) run of the tiny study, before any bad input."""
    folder = tmp_path_factory.mktemp("existing-store")
    spec = folder / "tiny.yaml"
    spec.write_text(BASE.replace("MODEL_DIR", str(tiny_model_dir)))
    store = folder / "jd.duckdb"
    result = runner.invoke(app, ["run", str(spec), "--store", str(store), "--limit", "1", "--json"])
    assert result.exit_code == 0, result.output
    return store


def _snapshot(store: Path) -> dict[str, tuple[bytes, int] | None]:
    """Bytes and modification time of the store and its companions, None where absent."""
    files = [store, Path(f"{store}.lock"), Path(f"{store}.wal")]
    return {str(f): (f.read_bytes(), f.stat().st_mtime_ns) if f.exists() else None for f in files}


def _assert_refused(spec: Path, store: Path, expected: list[str]) -> None:
    """Each command exits 2 with one paragraph naming the file, and leaves the store as it was."""
    before = _snapshot(store)
    for command in COMMANDS:
        arguments = [command, str(spec), "--store", str(store)]
        if command == "report":
            arguments += ["--out", str(spec.parent / "reports")]
        result = runner.invoke(app, arguments)
        output = result.output.strip()
        assert result.exit_code == 2, output
        assert "Traceback" not in output and isinstance(result.exception, SystemExit), output
        assert output.startswith(f"error: {spec}"), output
        assert "\n" not in output, output  # one paragraph, no wrapped lines
        for part in expected:
            assert part in output, output
        assert _snapshot(store) == before, f"jd {command} changed the store"
    assert not (spec.parent / "reports").exists()


@pytest.fixture(params=["absent store", "existing store"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "absent store":
        return tmp_path / "absent.duckdb"
    return request.getfixturevalue("existing_store")


@pytest.mark.parametrize(
    ("base", "old", "new", "expected"),
    [case[1:] for case in EDITS],
    ids=[case[0] for case in EDITS],
)
def test_a_bad_spec_exits_2_naming_file_line_and_field(
    tmp_path: Path,
    tiny_model_dir: Path,
    store: Path,
    base: str,
    old: str,
    new: str,
    expected: list[str],
) -> None:
    assert old in base, old
    spec = tmp_path / "bad.yaml"
    spec.write_text(base.replace(old, new).replace("MODEL_DIR", str(tiny_model_dir)))
    _assert_refused(spec, store, expected)


@pytest.mark.parametrize(
    ("content", "expected"), [case[1:] for case in FILES], ids=[case[0] for case in FILES]
)
def test_an_unreadable_spec_file_exits_2_naming_it(
    tmp_path: Path, store: Path, content: bytes | str, expected: list[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    if content == "directory":
        spec.mkdir()
    elif content != "missing":
        spec.write_bytes(content)
    _assert_refused(spec, store, expected)
