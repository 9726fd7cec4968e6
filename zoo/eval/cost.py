"""Wall time and peak memory of one candidate.

``tracemalloc`` does not see torch's allocations, so on CPU the process RSS is sampled by a background
thread (``psutil``) and the peak above the starting RSS is reported: the growth a candidate adds to the
process, not its whole working set. The heap that earlier work freed is handed back to the system first
(glibc keeps it otherwise, and a later candidate would then grow into it unseen, so peaks would depend on
the order candidates run in). Without ``psutil`` the growth of ``ru_maxrss`` is used, which only sees peaks
above the process's earlier high-water mark. On CUDA the allocator's own peak counter is exact.
"""

from __future__ import annotations

import ctypes
import gc
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import psutil

SAMPLE_EVERY_S = 0.005
MB = 1024 * 1024


class RssSampler:
    """Peak resident set size of ``process`` while the block runs (``base``: RSS at entry), sampled in a thread.

    Shared by the harness and the benchmarks: torch's CPU allocator is invisible to ``tracemalloc``.
    """

    def __init__(self, process: psutil.Process, every_s: float = SAMPLE_EVERY_S) -> None:
        self.process, self.every_s = process, every_s
        self.base = self.peak = process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def release_freed_heap() -> None:
    """Collect garbage and return freed heap pages to the system (glibc only; elsewhere a no-op)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class Meter:
    """Filled in when the ``measured`` block ends: ``peak_mb`` and how it was measured."""

    peak_mb: float = 0.0
    memory: str = ""


@contextmanager
def measured(device: torch.device | str) -> Iterator[Meter]:
    meter = Meter()
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield meter
        torch.cuda.synchronize(device)
        meter.peak_mb, meter.memory = (torch.cuda.max_memory_allocated(device) - start) / MB, "cuda"
        return
    try:
        import psutil
    except ImportError:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        yield meter
        meter.peak_mb, meter.memory = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) / 1024, "maxrss"
        return
    release_freed_heap()
    with RssSampler(psutil.Process()) as sampler:
        yield meter
    meter.peak_mb, meter.memory = max(0, sampler.peak - sampler.base) / MB, "rss-sampled"
