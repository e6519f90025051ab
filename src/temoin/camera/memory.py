"""The camera's memory: glibc's malloc told to hand large blocks back to the system.

By default glibc raises its mmap threshold (up to 32 MiB) each time a large mmapped block is freed, so after the
first segment the encoder's frame buffers (rebuilt for each 2 s segment) and each segment's bytes (1-2 MB) come
from the heap instead, which fragments and never shrinks: in standby the agent's RSS grew by about 4 MiB per MB
held in the pre-event buffer. A fixed threshold keeps blocks of 128 KiB and more mmapped, unmapped when freed,
so the resident set follows what is really held (same effect as MALLOC_MMAP_THRESHOLD_=131072).
"""

from __future__ import annotations

import ctypes
import sys

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
MMAP_THRESHOLD = 128 * 1024
_fixed = False


def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold (once per process); False where there is no glibc mallopt (then nothing)."""
    global _fixed
    if _fixed:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to ask (static builds): the default stands
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _fixed = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return _fixed
