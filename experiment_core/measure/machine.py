"""The anonymous id of the machine a trial runs on (``machine`` in trial events).

A salted hash: SHA-256 of this host's machine id (``/etc/machine-id``, else ``/var/lib/dbus/machine-id``, else
the network card's node id) and the repository's root commit, cut to 16 hex digits. The same on every clone of
one repository on one machine (same host id, same root commit), different across repositories (so ids cannot be
joined between projects), and neither a hostname nor a user name reaches the ledger. Computed once per
repository and cached in the git common dir: a measurement job reads one small file and starts no process.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

from experiment_core.fsutil import atomic_write_text
from experiment_core.gitio import Git

HOST_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
CACHE_NAME = "experiment-hook-machine"
SALT = "experiment-hook machine v1"
ID_RE = re.compile(r"^[0-9a-f]{16}$")


def host_secret(files: tuple[Path, ...] = HOST_ID_FILES) -> str:
    """This host's stable id (never written anywhere: only its salted hash is)."""
    for path in files:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text:
            return text
    return f"node-{uuid.getnode():012x}"


def machine_hash(host: str, root_commit: str) -> str:
    return hashlib.sha256(f"{SALT}\0{host}\0{root_commit}".encode()).hexdigest()[:16]


def root_commit(git: Git) -> str | None:
    roots = git.out("rev-list", "--max-parents=0", "HEAD", check=False).split()
    return min(roots) if roots else None


def machine_id(git: Git) -> str:
    """This machine's id for this repository ("" before the first commit, when there is nothing to salt with)."""
    cache = git.common_dir / CACHE_NAME
    try:
        cached = cache.read_text().strip()
        if ID_RE.match(cached):
            return cached
    except OSError:
        pass
    root = root_commit(git)
    if root is None:
        return ""
    value = machine_hash(host_secret(), root)
    try:
        atomic_write_text(cache, value + "\n")
    except OSError:
        pass
    return value
