#!/usr/bin/env bash
# Set up, then run the offline demo study end to end: plan, run, report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jd plan specs/demo.yaml
jd run specs/demo.yaml --resume
jd report specs/demo.yaml
echo "chart: reports/demo/drop.png (and drop.html)"
