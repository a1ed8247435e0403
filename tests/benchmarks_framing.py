"""Lets tests import benchmarks/bench_framing.py (benchmarks/ is not a package)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("bench_framing", Path(__file__).parents[1] / "benchmarks" / "bench_framing.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
frontal_framing, orbit_detections = _mod.frontal_framing, _mod.orbit_detections
