import sys
from pathlib import Path

# Test modules share `tests/helpers.py` as `tests.helpers`. With --import-mode=importlib
# pytest does not put the repository root on sys.path, so a bare `pytest` (unlike
# `python -m pytest`) could not import it. Appended, not prepended: nothing at the root
# may shadow an installed package (the package itself lives under python/).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)
