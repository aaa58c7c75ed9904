"""The guard's shingle hashes are the same in every process: a scan's LSH candidates, and so its verdicts,
do not depend on Python's per-process string-hash salt."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "from reasonmed.contamination import shingles; "
    "print(sorted(shingles('Which artery is most likely occluded?', [('A', 'Right coronary'), ('B', 'Left main')])))"
)


def test_shingles_do_not_depend_on_the_string_hash_salt() -> None:
    outputs = {
        subprocess.run(
            [sys.executable, "-c", PROBE],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "random")
    }
    assert len(outputs) == 1 and outputs.pop().startswith("[")
