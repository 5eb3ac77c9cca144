"""Cost records of erasure methods (paper Table 10 and Appendix F; cadkit's definition below).

``edit_time_s`` is wall-clock time from "models loaded" (the adapter is handed to the method) to
"edit computed" (the method's tensors exist; building the edit object is included, any validation
generation is not). Memory over the same span:

* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (``peak_mem_mb``) and
  ``max_memory_reserved`` (``peak_reserved_mb``), of the adapter's device, MiB (2^20 bytes);
* CPU: peak growth of the process's resident set size (``peak_rss_growth_mb``): a daemon thread
  reads ``/proc/self/statm`` every ``interval_s`` (5 ms) and keeps the maximum; growth = max - RSS
  at the start. Short spikes between samples are missed, so it is a lower bound. Where
  ``/proc`` is missing, ``resource.getrusage`` gives the growth of the lifetime peak
  (``ru_maxrss``), which is zero unless the run sets a new process high; ``rss_method`` says which.

``wall_incl_load_s`` is ``edit_time_s`` plus the caller's model-loading time when it is known.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

__all__ = ["CostRecord", "CostMeter", "rss_bytes"]

_STATM = "/proc/self/statm"


def rss_bytes() -> int | None:
    """Resident set size of this process in bytes (``/proc/self/statm``), or None where unavailable."""
    try:
        with open(_STATM) as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _maxrss_bytes() -> int:
    import resource
    import sys

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


@dataclass
class CostRecord:
    """What one method run cost (see the module docstring for definitions; MiB = 2^20 bytes)."""

    edit_time_s: float
    device: str
    dtype: str
    peak_mem_mb: float | None = None
    peak_reserved_mb: float | None = None
    peak_rss_growth_mb: float | None = None
    rss_method: str | None = None
    wall_incl_load_s: float | None = None
    phases: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CostMeter:
    """Measure time and peak memory over a ``with`` block on ``device``.

    ``meter.phase(name)`` (a context manager) adds the wall time of sub-steps to ``phases``.
    After the block, :meth:`record` gives the :class:`CostRecord`.
    """

    def __init__(self, device: torch.device | str, dtype: torch.dtype | str, interval_s: float = 0.005) -> None:
        self.device = torch.device(device)
        self.dtype = str(dtype).replace("torch.", "")
        self.interval_s = float(interval_s)
        self.phases: dict[str, float] = {}
        self._t0 = 0.0
        self.elapsed = 0.0
        self._rss0: int | None = None
        self._rss_peak = 0
        self._maxrss0 = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cuda_peak: tuple[float, float] | None = None
        self._maxrss_growth: int | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            r = rss_bytes()
            if r is not None and r > self._rss_peak:
                self._rss_peak = r

    def __enter__(self) -> CostMeter:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._rss0 = rss_bytes()
        self._rss_peak = self._rss0 or 0
        self._maxrss0 = _maxrss_bytes()
        if self._rss0 is not None:
            self._thread = threading.Thread(target=self._sample, name="cadkit-rss", daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.elapsed = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        r = rss_bytes()
        if r is not None and r > self._rss_peak:
            self._rss_peak = r
        self._maxrss_growth = _maxrss_bytes() - self._maxrss0
        if self.device.type == "cuda":
            self._cuda_peak = (torch.cuda.max_memory_allocated(self.device) / 2**20,
                               torch.cuda.max_memory_reserved(self.device) / 2**20)

    class _Phase:
        def __init__(self, meter: CostMeter, name: str) -> None:
            self.meter, self.name = meter, name

        def __enter__(self) -> None:
            if self.meter.device.type == "cuda":
                torch.cuda.synchronize(self.meter.device)
            self.t = time.perf_counter()

        def __exit__(self, *exc: Any) -> None:
            if self.meter.device.type == "cuda":
                torch.cuda.synchronize(self.meter.device)
            self.meter.phases[self.name] = self.meter.phases.get(self.name, 0.0) + time.perf_counter() - self.t

    def phase(self, name: str) -> CostMeter._Phase:
        """Time a sub-step (accumulated under ``name``)."""
        return CostMeter._Phase(self, name)

    def record(self, load_time_s: float | None = None) -> CostRecord:
        """The cost record of the finished block; ``load_time_s`` adds ``wall_incl_load_s``."""
        if self._rss0 is not None:
            growth: float | None = (self._rss_peak - self._rss0) / 2**20
            method = f"sampled /proc/self/statm every {self.interval_s * 1000:g} ms (peak RSS - RSS at start)"
        else:
            growth = None if self._maxrss_growth is None else self._maxrss_growth / 2**20
            method = "resource.getrusage ru_maxrss growth (lifetime peak; 0 unless a new high)"
        return CostRecord(
            edit_time_s=round(self.elapsed, 4),
            device=str(self.device),
            dtype=self.dtype,
            peak_mem_mb=None if self._cuda_peak is None else round(self._cuda_peak[0], 1),
            peak_reserved_mb=None if self._cuda_peak is None else round(self._cuda_peak[1], 1),
            peak_rss_growth_mb=None if growth is None else round(growth, 1),
            rss_method=method,
            wall_incl_load_s=None if load_time_s is None else round(self.elapsed + float(load_time_s), 4),
            phases={k: round(v, 4) for k, v in self.phases.items()},
        )
