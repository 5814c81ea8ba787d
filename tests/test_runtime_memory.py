"""Process-level memory settings: a job can undo the Makefile's malloc tuning."""

import subprocess
import sys

import pytest

from tests.helpers.workflow import REPO

CHILD = """
import numpy as np
from pipeline.runtime import return_freed_memory

def rss_mb():
    with open("/proc/self/status") as fh:
        return int(next(l for l in fh if l.startswith("VmRSS")).split()[1]) / 1024

if {restore}:
    assert return_freed_memory()
blocks = [np.ones(2_000_000) for _ in range(40)]  # 40 x 16 MB
del blocks
print(rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc and /proc only")
def test_freed_memory_goes_back_to_the_system_only_after_the_call():
    env = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000", "PYTHONPATH": str(REPO)}

    def resident_after_free(restore: bool) -> float:
        out = subprocess.run(
            [sys.executable, "-c", CHILD.format(restore=restore)], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return float(out.stdout)

    kept, returned = resident_after_free(False), resident_after_free(True)
    assert kept > returned + 400  # the 640 MB stay with the process unless it asks otherwise
