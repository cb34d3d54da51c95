"""Where the ledger lives: the names of its notes refs, in one place.

Each experiment's events live in a notes ref of their own, ``refs/notes/experiments-<exp-id>``, so a push of new
events makes git check connectivity over that one experiment's tree, not the whole ledger's. The ref of clones
before 0.3, ``refs/notes/experiments``, stays part of the ledger (the *legacy* ref): readers read the union of all
of them and deduplicate by event id, so an event copied from one ref to another is never counted twice.

A ref is only where an event is stored; the event itself names its experiment. Ids that are not a valid ref
component (``a..b``, ``x.lock``, ``x.``), and ``remote`` (whose ref would clash with the directory of 0.2's side
refs, ``refs/notes/experiments-remote/``), get a name with ``_`` for ``.`` and a trailing ``_``: two experiments
sharing a ref would cost speed, never correctness.

A remote's ledger refs are fetched into ``refs/notes/remotes/<remote>/experiments[-<exp-id>]`` (git's
``refs/remotes/<remote>/`` convention): no name there collides with a local ledger ref, with another remote's, or
with the glob ``refs/notes/experiments*``; 0.2's side refs (``refs/notes/experiments-remote/<remote>``) are left
behind by :func:`experiment_core.store.sync.setup_remote`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from experiment_core.gitio import Git

LEGACY = "refs/notes/experiments"
PREFIX = LEGACY + "-"
GLOB = LEGACY + "*"  # every ledger ref (what fetch and notes.rewriteRef name)
REWRITE_GLOB = PREFIX + "*"
OLD_SIDE_PREFIX = PREFIX + "remote"  # 0.2's side refs: refs/notes/experiments-remote/<remote>
SIDE_ROOT = "refs/notes/remotes"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def exp_ref(exp_id: str) -> str:
    """The notes ref of one experiment's events (``git notes --ref experiments-<exp-id> list`` shows them)."""
    name = exp_id
    if name == "remote" or ".." in name or name.endswith((".", ".lock")):
        name = name.replace(".", "_") + "_"
    return PREFIX + name


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}\Z")


def is_ledger_ref(name: str) -> bool:
    """The legacy ref, or ``refs/notes/experiments-<name>`` with a name as experiment ids are spelled (a remote's
    ref of another shape is not ours: never fetched, read or named in a git command)."""
    if name == LEGACY:
        return True
    return name.startswith(PREFIX) and _NAME_RE.match(name, len(PREFIX)) is not None


def side_prefix(remote: str) -> str:
    return f"{SIDE_ROOT}/{remote}/"


def side_ref(remote: str, ref: str = LEGACY) -> str:
    """Where ``remote``'s ledger ref ``ref`` is fetched to (never over a local ref)."""
    return side_prefix(remote) + ref[len("refs/notes/") :]


def from_side(remote: str, side: str) -> str | None:
    """The ledger ref a side ref of ``remote`` mirrors (None for anything else under that prefix)."""
    if not side.startswith(side_prefix(remote)):
        return None
    ref = "refs/notes/" + side[len(side_prefix(remote)) :]
    return ref if is_ledger_ref(ref) else None


def fetch_glob(remote: str) -> str:
    """What a plain ``git fetch REMOTE`` brings of the ledger: every ledger ref into its side ref."""
    return f"+{GLOB}:{side_prefix(remote)}experiments*"


def parse_refs(text: str) -> dict[str, str]:
    """``<sha> <name>`` (or tab-separated) lines into {name: sha}."""
    refs: dict[str, str] = {}
    for line in text.splitlines():
        sha, _, name = line.replace("\t", " ").partition(" ")
        if sha and name:
            refs[name.strip()] = sha.strip()
    return refs


def list_refs(git: Git, *patterns: str) -> dict[str, str]:
    """{name: object} of the refs matching ``for-each-ref`` patterns (one process)."""
    return parse_refs(git.out("for-each-ref", "--format=%(objectname) %(refname)", *patterns))


def tips(git: Git) -> dict[str, str]:
    """{ledger ref: commit} of this clone, sorted by name (one ``for-each-ref``)."""
    return ledger_tips(list_refs(git, LEGACY, PREFIX + "*"))


def ledger_tips(refs: Mapping[str, str]) -> dict[str, str]:
    return {name: sha for name, sha in sorted(refs.items()) if is_ledger_ref(name)}


def token(refs: Mapping[str, str]) -> str | None:
    """One name for a state of the ledger: the commit when only the legacy ref exists (what 0.2's index and
    caches stored), else a digest of every (ref, commit); None for no ledger at all."""
    refs = ledger_tips(refs)
    if not refs:
        return None
    if list(refs) == [LEGACY]:
        return refs[LEGACY]
    import hashlib  # 3 ms (OpenSSL): not on paths that never name the ledger's state, such as ``record``

    text = "".join(f"{sha} {name}\n" for name, sha in refs.items())
    return "tips:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
