"""Local files of a running service: the data directory lock and ``runtime.json``.

Both are opened without following symbolic links; ``runtime.json`` is written atomically, removed only by the
process that wrote it, and trusted by clients only when its pid is alive and owns the web port it names.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stream.errors import UserError
from stream.kafka.embedded import port_in_use

RUNTIME_FILE = "runtime.json"

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` with one clear line."""
    try:
        return os.open(path, flags | _NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path} is a symbolic link: remove it (driftwarden does not follow links there)") \
                from None
        raise


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the data directory; a second `driftwarden up` on it gets one clear line."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "driftwarden.lock"
    handle = os.fdopen(_open_nofollow(path, os.O_RDWR | os.O_CREAT), "r+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(32).strip() or "another process"
            raise UserError(
                f"driftwarden is already running on {data_dir} (pid {holder}): stop it first, or set "
                "DRIFTWARDEN_DATA_DIR to another directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _read_runtime_file(data_dir: Path) -> dict[str, Any] | None:
    try:
        fd = _open_nofollow(data_dir / RUNTIME_FILE, os.O_RDONLY)
    except (OSError, UserError):
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            info = json.loads(handle.read(65536))
        except ValueError:
            return None
    return info if isinstance(info, dict) else None


def read_runtime(data_dir: Path) -> dict[str, Any] | None:
    """Where the running service listens (written by `up`), or None when it is not running.

    Trusted only when its pid is alive and that process listens on the file's web port on this machine (a
    stale or forged file does not redirect clients).
    """
    info = _read_runtime_file(data_dir)
    if info is None:
        return None
    try:
        pid = int(info["pid"])
        url = urlsplit(str(info["web_url"]))
        port = url.port
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    host = url.hostname or ""
    if url.scheme != "http" or port is None or not (is_loopback(host) or host in ("0.0.0.0", "::")):
        return None
    if not listens_on(pid, port):
        return None
    return info


def listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a TCP socket listening on ``port`` (Linux /proc; elsewhere: a connect)."""
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return port_in_use("127.0.0.1", port)
    inodes: set[str] = set()
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for fd in fds:
        with contextlib.suppress(OSError):  # fds close while we look
            if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                return True
    return False


def remove_runtime(data_dir: Path) -> None:
    """Remove runtime.json if this process wrote it (never another service's)."""
    info = _read_runtime_file(data_dir)
    if info is not None and info.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            (data_dir / RUNTIME_FILE).unlink()


def write_runtime(data_dir: Path, info: dict[str, Any]) -> None:
    """Write runtime.json atomically (a link in its place is replaced, never followed)."""
    temporary = data_dir / f".{RUNTIME_FILE}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    with os.fdopen(_open_nofollow(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as handle:
        handle.write(json.dumps(info))
    os.replace(temporary, data_dir / RUNTIME_FILE)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
