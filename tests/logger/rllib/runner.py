"""Runs logger programs on RLlib 2.40's MetricsLogger: the RLlib side of the differential
tests, started in the RLlib virtualenv (``venv.py``) by ``client.py``.

Protocol, one JSON document per line: the client writes a program (see
``interpreter.py``) or ``{"snippet": source}``, this process answers ``{"ok":
observations}`` or ``{"error": traceback}``; an empty line or end of input ends it.
The first line written is ``{"ready": versions}`` once RLlib is imported.
"""

from __future__ import annotations

import json
import sys
import traceback
import warnings
from pathlib import Path


def main() -> int:
    # numpy warns on all-NaN slices (RLlib's nanmean/nanmin of NaNs): what RLlib
    # returns is observed, its warnings are not.
    warnings.simplefilter("ignore")
    # Answers go to the real stdout only; anything else printing lands on stderr.
    out = sys.stdout
    sys.stdout = sys.stderr
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import interpreter
    import numpy as np
    import ray
    from ray import cloudpickle
    from ray.rllib.utils.metrics.metrics_logger import MetricsLogger
    from ray.rllib.utils.metrics.stats import Stats

    def roundtrip(x: object) -> object:
        return cloudpickle.loads(cloudpickle.dumps(x))

    versions = {"ray": ray.__version__, "numpy": np.__version__, "python": sys.version.split()[0]}
    out.write(json.dumps({"ready": versions}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            break
        try:
            request = json.loads(line)
            if "snippet" in request:
                source = request["snippet"]
                answer = {"ok": interpreter.run_snippet(source, MetricsLogger, Stats, roundtrip)}
            else:
                answer = {
                    "ok": interpreter.run(
                        request, MetricsLogger, cloudpickle.dumps, cloudpickle.loads
                    )
                }
        except Exception:
            answer = {"error": traceback.format_exc()}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
