"""Device choice: ``auto`` prefers CUDA, then Apple MPS, then the CPU."""
from __future__ import annotations

import os
import re

import torch


class DeviceError(ValueError):
    pass


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    spec = "auto" if spec is None else str(spec).strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' was asked for, but Apple MPS is not available on this machine")
        return torch.device("mps")
    m = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if m:
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} was asked for, but CUDA is not available (try --device cpu)")
        index = int(m.group(1) or 0)
        if index >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    return str(device)


def preferred_memory_format(module: torch.nn.Module, device: torch.device) -> torch.memory_format:
    """channels_last (NHWC) where it pays: convolutions on CUDA (cuDNN), and on the CPU for batch-norm networks
    (oneDNN: 2-3x for DCGAN); instance norm and reflection padding are slower in NHWC on the CPU (CycleGAN)."""
    modules = list(module.modules())
    if not any(isinstance(m, torch.nn.modules.conv._ConvNd) for m in modules):
        return torch.contiguous_format
    if device.type == "cuda":
        return torch.channels_last
    slow = (torch.nn.InstanceNorm2d, torch.nn.ReflectionPad2d)
    return torch.contiguous_format if any(isinstance(m, slow) for m in modules) else torch.channels_last


def machine_memory_bytes() -> int | None:
    """This machine's memory, where the system says (Linux, macOS)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep the memory of freed tensors for the next ones, for the rest of this process.

    By default glibc gives every allocation over 32 MB its own mmap and returns it to the kernel when freed; the
    next activation of that size is then faulted in and zeroed by the kernel page by page. An inference loop that
    frees and makes the same large activations tile after tile spends a third of its time there (gan upscale's
    trunk and rise: 1.4x faster without it, bench/RESULTS.md issue 39). The cost: the process keeps its peak
    memory until it exits, which a command that runs and ends does anyway. Linux with glibc only; elsewhere (and
    under another libc) nothing changes and False is returned."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
