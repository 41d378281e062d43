"""Files the suite writes atomically get the permissions a plain ``open`` would give.

An atomic write goes to a temporary file or folder beside the destination and is renamed
into place. ``tempfile.mkstemp`` creates files 0600 and ``mkdtemp`` folders 0700 whatever
the umask, so a team sharing a results or data directory would meet "permission denied"
on each other's records, prepared videos and cache entries. :func:`share` gives them
0666 / 0777 less the umask, the modes ``open`` and ``mkdir`` give, before the rename.
"""

from __future__ import annotations

import functools
import os

FILE_MODE = 0o666  # what open() asks for; the umask takes its bits away
DIR_MODE = 0o777  # what mkdir() asks for


def umask() -> int:
    """The process's umask. Linux shows it in /proc/self/status, read without changing it
    (so it is current, and no other thread sees a umask of 0); elsewhere it is read once
    by setting and restoring it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _umask_once()


@functools.cache
def _umask_once() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def share(target: str | os.PathLike | int, directory: bool = False) -> None:
    """Give ``target`` (a path, or an open file's descriptor) made by ``mkstemp`` or
    ``mkdtemp`` the mode ``open`` or ``mkdir`` would have given it: 0666 or 0777 less the
    umask."""
    mode = (DIR_MODE if directory else FILE_MODE) & ~umask()
    if isinstance(target, int):
        os.fchmod(target, mode)
    else:
        os.chmod(target, mode)
