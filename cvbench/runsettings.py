"""Run settings that depend on the machine: batch split, precision, loader workers, threads.

The papers state a *global* batch (samples per optimiser step, over all devices); what fits
on one device is the *device batch*; gradient accumulation makes up the rest::

    global batch = device batch x devices x nodes x accumulation

A config file's ``device_batch`` is the most that fits per device, one number or one per
memory class (``cpu``, ``gpu_<N>gb``, :func:`memory_class`); the largest device batch up to
it that meets the global batch exactly is taken. A device batch the user asks for
(``--device-batch`` / ``--batch-size``) is taken as it is. A global batch that no
integer accumulation meets is refused (:class:`SettingsError`) with the nearest options.

Defaults on a GPU accelerator: precision ``bf16-mixed`` (a method's config may ask for
``gpu_precision``), ``min(8, cores per device)`` loader workers, the ``uint8`` transport
(pictures and residuals cross from the workers as uint8 and are normalised on the GPU:
the same float32 values, a quarter of the bytes; ``datamodules.contract.Transport``),
torch threads = cores / local processes. On the CPU everything stays as it was (32-bit,
no workers, the float32 transport, torch's own thread count in one process), so CPU runs
keep their numbers bit for bit.

Everything here is a pure function of its arguments except :func:`detect_machine`, which
asks torch and the OS; so ``cvbench run --print-config`` and the tests need no GPU.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from datamodules.contract import Transport
from datamodules.errors import CvbenchError

GPU_PRECISION = "bf16-mixed"  # the default precision on a GPU accelerator
CPU_PRECISION = "32-true"  # the CPU default: today's numbers bit for bit
MAX_GPU_WORKERS = 8  # DataLoader workers per device on a GPU, at most
GPU_TRANSPORT = Transport.UINT8.value  # loader batches on a GPU: uint8, finished on the device
CPU_TRANSPORT = Transport.FLOAT32.value  # the CPU default: finished in the workers, as always
TRANSPORTS = tuple(t.value for t in Transport)  # what --transport accepts
ASSUMED_GPU_MEMORY_GB = 80.0  # per device, when no GPU is visible and none is given
MEMORY_SLACK = 1.1  # a class named N GB fits a device reporting N / 1.1 GiB (marketing GB)
CPU_CLASS = "cpu"
LOGGERS = ("csv", "tensorboard", "both")
_GPU_CLASS = re.compile(r"^gpu_(\d+)gb$")


class SettingsError(CvbenchError, ValueError):
    """A run setting that cannot be met (the command prints one line and exits 2)."""


@dataclass(frozen=True)
class Machine:
    """What the settings are resolved for (measured, or assumed for --print-config)."""

    accelerator: str  # "cpu" or "gpu" ("auto" already resolved)
    devices: int  # devices (= processes) per node
    num_nodes: int  # nodes
    cores: int  # CPU cores this process may use (its affinity)
    gpu_memory_gb: float | None = None  # memory per device in GiB (None on the CPU)
    memory_source: str = ""  # where gpu_memory_gb came from: measured, --gpu-memory-gb, assumed

    @property
    def gpu(self) -> bool:
        return self.accelerator == "gpu"


@dataclass(frozen=True)
class BatchPlan:
    """One optimiser step's samples: device_batch x devices x num_nodes x accumulation."""

    device_batch: int  # training samples per forward pass per device
    devices: int  # devices per node
    num_nodes: int  # nodes
    accumulation: int  # forward passes per optimiser step (Lightning's accumulate_grad_batches)
    memory_class: str | None = None  # the device_batch entry used, when it came from a mapping

    @property
    def global_batch(self) -> int:
        return self.device_batch * self.devices * self.num_nodes * self.accumulation

    def describe(self) -> str:
        return (
            f"global batch {self.global_batch} = device batch {self.device_batch} x "
            f"{self.devices} device{'s' * (self.devices != 1)} x {self.num_nodes} "
            f"node{'s' * (self.num_nodes != 1)} x {self.accumulation} accumulation"
        )


# --------------------------------------------------------------------------- the machine


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def count_devices(devices: str | int, gpu: bool, visible_gpus: int) -> int:
    """Devices per node that Lightning's ``devices`` means (a count, -1, a list, or auto)."""
    if isinstance(devices, int):
        if devices == -1:
            return max(visible_gpus, 1) if gpu else 1
        if devices < 1:
            raise SettingsError(f"--devices {devices}: expected a positive count, -1 or a list")
        return devices
    text = str(devices).strip()
    if text == "auto":
        return max(visible_gpus, 1) if gpu else 1
    if text.lstrip("-").isdigit():
        return count_devices(int(text), gpu, visible_gpus)
    ids = [part for part in text.strip("[]").split(",") if part.strip()]
    if not ids or not all(part.strip().isdigit() for part in ids):
        raise SettingsError(f"--devices {devices!r}: expected a count, -1, auto or a list 0,1")
    return len(ids)


def detect_machine(
    accelerator: str,
    devices: str | int,
    num_nodes: int = 1,
    gpu_memory_gb: float | None = None,
) -> Machine:
    """The machine a run resolves its settings for. ``accelerator`` gpu (or cuda) is taken
    at its word even without a visible GPU (``--print-config`` on a laptop): the device
    memory is then ``gpu_memory_gb`` or :data:`ASSUMED_GPU_MEMORY_GB`."""
    import torch

    if num_nodes < 1:
        raise SettingsError(f"--num-nodes {num_nodes}: expected a positive count")
    if gpu_memory_gb is not None and gpu_memory_gb <= 0:
        raise SettingsError(f"--gpu-memory-gb {gpu_memory_gb:g}: expected a positive size")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    kind = accelerator.lower()
    gpu = kind in ("gpu", "cuda") or (kind == "auto" and visible > 0)
    count = count_devices(devices, gpu, visible)
    memory, source = None, ""
    if gpu and gpu_memory_gb is not None:
        memory, source = float(gpu_memory_gb), "--gpu-memory-gb"
    elif gpu and visible:
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        source = f"measured ({torch.cuda.get_device_name(0)})"
    elif gpu:
        memory, source = ASSUMED_GPU_MEMORY_GB, "assumed, no GPU visible: --gpu-memory-gb sets it"
    return Machine(
        accelerator="gpu" if gpu else "cpu",
        devices=count,
        num_nodes=num_nodes,
        cores=available_cores(),
        gpu_memory_gb=memory,
        memory_source=source,
    )


# --------------------------------------------------------------------------- device batch


def check_device_batch(value: Any, source: str) -> int | dict[str, int]:
    """A ``device_batch`` setting: a positive int or ``{memory class: positive int}``."""
    if isinstance(value, Mapping):
        out = {}
        for key, number in value.items():
            if key != CPU_CLASS and not _GPU_CLASS.match(str(key)):
                raise SettingsError(
                    f"{source}: device_batch: {key!r}: expected a memory class, "
                    f"{CPU_CLASS} or gpu_<N>gb (e.g. gpu_80gb)"
                )
            out[str(key)] = _positive(number, f"{source}: device_batch.{key}")
        if not out:
            raise SettingsError(f"{source}: device_batch: an empty mapping")
        return out
    return _positive(value, f"{source}: device_batch")


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(f"{what}: expected a positive integer, got {value!r}")
    return value


def memory_class(machine: Machine) -> str:
    """``cpu``, or ``gpu_<N>gb`` rounded to the device's memory (used in messages)."""
    if not machine.gpu:
        return CPU_CLASS
    return f"gpu_{round(machine.gpu_memory_gb or ASSUMED_GPU_MEMORY_GB)}gb"


def fitting_batch(device_batch: int | Mapping[str, int], machine: Machine) -> tuple[int, str]:
    """(the most samples per device that fit, the mapping entry it came from) for
    ``machine``: the ``cpu`` entry on the CPU; on a GPU the largest ``gpu_<N>gb`` class
    the device holds (N <= memory x :data:`MEMORY_SLACK`), else the smallest class scaled
    down by memory. A plain number is the same for every machine."""
    if not isinstance(device_batch, Mapping):
        return device_batch, ""
    if not machine.gpu:
        if CPU_CLASS not in device_batch:
            smallest = min(device_batch.values())
            return smallest, f"no {CPU_CLASS} entry: the smallest"
        return device_batch[CPU_CLASS], CPU_CLASS
    classes = sorted((int(m.group(1)), key) for key in device_batch if (m := _GPU_CLASS.match(key)))
    if not classes:
        return device_batch[CPU_CLASS], f"{CPU_CLASS} (no gpu_<N>gb entry)"
    memory = machine.gpu_memory_gb or ASSUMED_GPU_MEMORY_GB
    fits = [(size, key) for size, key in classes if size <= memory * MEMORY_SLACK]
    if fits:
        return device_batch[fits[-1][1]], fits[-1][1]
    size, key = classes[0]
    scaled = max(1, math.floor(device_batch[key] * memory / size))
    return scaled, f"{key} scaled to {memory:.0f} GB"


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)})


def plan_batch(
    machine: Machine,
    device_batch: int | Mapping[str, int],
    global_batch: int | None = None,
    exact: bool = False,
) -> BatchPlan:
    """Split ``global_batch`` into device batch x devices x nodes x accumulation.

    ``device_batch``: the most that fits per device (``exact`` False: the largest divisor of
    the per-device share up to it is taken) or the device batch itself (``exact`` True, a
    user's ``--device-batch``). No ``global_batch``: device batch x devices x nodes, no
    accumulation. A split that is not exact raises :class:`SettingsError` with the nearest
    options.
    """
    fit, entry = fitting_batch(device_batch, machine)
    replicas = machine.devices * machine.num_nodes
    if global_batch is None:
        return BatchPlan(fit, machine.devices, machine.num_nodes, 1, entry or None)
    _positive(global_batch, "global batch")
    where = (
        f"{machine.devices} device{'s' * (machine.devices != 1)} x {machine.num_nodes} "
        f"node{'s' * (machine.num_nodes != 1)}"
    )
    if global_batch % replicas:
        below = global_batch // replicas * replicas
        options = [g for g in (below, below + replicas) if g > 0]
        raise SettingsError(
            f"global batch {global_batch} is not a multiple of {where} = {replicas}; nearest: "
            + " or ".join(f"--global-batch {g}" for g in options)
            + f", or devices x nodes dividing {global_batch}"
        )
    share = global_batch // replicas  # samples per device per optimiser step
    choices = divisors(share)
    if exact:
        if share % fit == 0:
            return BatchPlan(fit, machine.devices, machine.num_nodes, share // fit, entry or None)
        lower = [d for d in choices if d < fit][-2:]
        upper = [d for d in choices if d > fit][:1]
        shown = ", ".join(f"{d} (accumulation {share // d})" for d in [*lower, *upper])
        raise SettingsError(
            f"global batch {global_batch} cannot be met with device batch {fit} x {where} x an "
            f"integer accumulation; nearest device batches: {shown}"
        )
    best = max(d for d in choices if d <= fit)
    return BatchPlan(best, machine.devices, machine.num_nodes, share // best, entry or None)


def scaled_lr(lr: float, global_batch: int, reference: int) -> float:
    """The linear scaling rule: ``lr`` set for ``reference`` samples per step, at ``global_batch``."""
    return lr * global_batch / reference


# --------------------------------------------------------------------------- the rest


def default_precision(machine: Machine, gpu_precision: str | None = None) -> str:
    """bf16-mixed on a GPU (or the method's ``gpu_precision``), 32-true on the CPU."""
    return (gpu_precision or GPU_PRECISION) if machine.gpu else CPU_PRECISION


def cores_per_process(machine: Machine) -> int:
    return max(1, machine.cores // machine.devices)


def default_workers(machine: Machine) -> int:
    """min(8, cores per device) on a GPU; 0 on the CPU (loading in the training process,
    as before: CPU runs keep their numbers and their speed on small machines)."""
    return min(MAX_GPU_WORKERS, cores_per_process(machine)) if machine.gpu else 0


def default_transport(machine: Machine) -> str:
    """uint8 on a GPU (the loader's hand-over of float32 batches was what held GPU runs
    back; the device finishes them to the same values); float32 on the CPU, as before."""
    return GPU_TRANSPORT if machine.gpu else CPU_TRANSPORT


def default_threads(machine: Machine) -> int | None:
    """Torch intra-op threads per process: cores / local processes. None (torch's own
    count, left as it is) for one process on the CPU, so CPU runs keep their summation order."""
    if not machine.gpu and machine.devices == 1:
        return None
    return cores_per_process(machine)


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def default_logger() -> str:
    return "both" if tensorboard_installed() else "csv"


def check_logger(logger: str) -> str:
    if logger not in LOGGERS:
        raise SettingsError(f"--logger {logger!r}: expected one of {', '.join(LOGGERS)}")
    if logger != "csv" and not tensorboard_installed():
        raise SettingsError(f"--logger {logger}: tensorboard is not installed (pip install)")
    return logger


def check_count(value: int | None, flag: str, minimum: int = 1) -> int | None:
    """``value`` of an integer flag, or a one-line error when it is below ``minimum``."""
    if value is not None and value < minimum:
        what = "a positive number" if minimum == 1 else f"a number >= {minimum}"
        raise SettingsError(f"{flag} {value}: expected {what}")
    return value
