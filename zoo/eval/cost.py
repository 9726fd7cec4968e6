"""Wall time and peak memory of one candidate.

``tracemalloc`` does not see torch's allocations, so on CPU the process RSS is sampled by a background
thread (``psutil``) and the peak above the starting RSS is reported; without ``psutil`` the growth of
``ru_maxrss`` is used, which only sees peaks above the process's earlier high-water mark. On CUDA the
allocator's own peak counter is exact.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

SAMPLE_EVERY_S = 0.005
MB = 1024 * 1024


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
    process = psutil.Process()
    start, peak, stop = process.memory_info().rss, [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(SAMPLE_EVERY_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield meter
    finally:
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], process.memory_info().rss)
        meter.peak_mb, meter.memory = max(0, peak[0] - start) / MB, "rss-sampled"
