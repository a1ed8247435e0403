#!/usr/bin/env bash
# One command for a session lent a GPU: seconds per view and peak GPU memory of exact, fast and turbo at 8 and 16
# views, with and without torch.compile, on SD1.5-size random weights at 512x512 in fp16 (benchmarks/gpu_check.py,
# whose docstring says what is measured). Stops measuring after 7 minutes (--budget 420, so that the whole command
# stays under 8 on one H100) and names any cell it left out. Options after these defaults override them:
#   bash benchmarks/gpu_check.sh [--compile off] [--views 8] [--repeats 3] [--budget 0] [--out gpu_check.md] ...
set -euo pipefail
PYTHON=${PYTHON:-python}
exec "$PYTHON" "$(dirname "$0")/gpu_check.py" --device cuda --dtype fp16 --preset sd15 --res 512 --budget 420 "$@"
