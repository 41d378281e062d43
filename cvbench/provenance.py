"""Where a record comes from, and how it is written: the code version, the hardware, a
settings hash, the provenance fields every record carries, and the atomic JSON writer.

No Lightning and no torch at import, so the report code, the benches and the CLI can stamp
and write records without importing :mod:`cvbench.run`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cvbench import __version__
from datamodules.encode import write_json_atomic as write_json_file


def config_hash(data: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of ``data`` as sorted JSON."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def code_version() -> str:
    """The package version and, inside a git checkout, the commit (with -dirty)."""
    try:
        here = Path(__file__).resolve().parent.parent
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{__version__}+{out}" if out else __version__
    except (OSError, subprocess.SubprocessError):
        return __version__


def hardware() -> dict[str, Any]:
    """The platform, CPU count, torch version and threads, and the GPU when there is one."""
    import torch  # only when a record is stamped: importing this module stays cheap

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def provenance(version: str | None = None) -> dict[str, Any]:
    """Which code made a record (``version``: :func:`code_version`, asked for when not
    given), when and on what."""
    return {
        "code_version": version or code_version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "hardware": hardware(),
    }


def write_json_atomic(path: Path, record: dict[str, Any]) -> None:
    """A record file: JSON with 2-space indents, written atomically (the data layer's writer)."""
    write_json_file(path, record, indent=2)
