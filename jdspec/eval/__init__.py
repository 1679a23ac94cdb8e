"""Evaluation: the requests tasks build, log-likelihood scoring, greedy generation, batch sizes,
perplexity, and the evaluation job's runner (job.py)."""
