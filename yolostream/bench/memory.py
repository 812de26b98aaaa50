"""Peak memory: resident set size on the CPU (from /proc, no psutil), allocator peak on CUDA."""

from __future__ import annotations

import torch

STATUS = "/proc/self/status"
CLEAR_REFS = "/proc/self/clear_refs"


def parse_status_kib(text: str, key: str) -> int | None:
    """The value of ``key`` (e.g. ``VmHWM``) in /proc/<pid>/status text, in KiB; None when absent.

    Lines look like ``VmHWM:\\t  223700 kB`` (the kernel's "kB" is KiB).
    """
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            parts = rest.split()
            if parts and parts[0].isdigit():
                return int(parts[0])
    return None


def _status_mib(key: str) -> float | None:
    try:
        with open(STATUS) as f:
            kib = parse_status_kib(f.read(), key)
    except OSError:  # not Linux
        return None
    return None if kib is None else kib / 1024


def rss_mib() -> float | None:
    """Current resident set size of this process in MiB (None where /proc is missing)."""
    return _status_mib("VmRSS")


def peak_rss_mib() -> float | None:
    """Peak resident set size (high-water mark) since the process started or the last `reset_peak_rss`."""
    return _status_mib("VmHWM")


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux >= 4.0: write 5 to clear_refs).

    Returns False where that is not possible; the peak then counts from the start of the process, which
    is why the bench records whether the reset worked next to every peak.
    """
    try:
        with open(CLEAR_REFS, "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def reset_peak(device: torch.device) -> bool:
    """Start a new peak measurement on ``device``; True when the peak now counts from here."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    return reset_peak_rss()


def peak_mib(device: torch.device) -> float | None:
    """Peak memory since `reset_peak`: tensor memory allocated on a CUDA device, else the process RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mib()
