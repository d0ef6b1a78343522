"""What a result ran on, written once for every report (benchmarks, ``genrec compare``)."""

from __future__ import annotations

import os
import platform


def hardware() -> dict:
    """CPU model, cores, torch threads, memory, GPU (or None), torch and Python versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "python": platform.python_version()}


def hardware_line(info: dict | None = None) -> str:
    """One line for a report header, e.g. 'AMD EPYC 7B13, 2 cores, CPU only, torch 2.13.0'."""
    info = info or hardware()
    return (f"{info['cpu']}, {info['cores']} cores, {info['gpu'] or 'CPU only'}, torch {info['torch']}, "
            f"{info['torch_threads']} torch threads")
