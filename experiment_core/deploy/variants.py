"""Control and treatment content of an experiment's files: backups as git blobs, and deploying a variant
through git's own filter driver (:mod:`experiment_core.deploy.filter_driver`), so git sees a deployed variant as clean
and updates the file through every operation.

Deploying = writing this worktree's ``deployed`` records, then ``git checkout -- TARGET`` (the smudge writes the
treatment merged onto the committed content, and the index records the stat). Undeploying = removing the record,
then the same checkout. What each worktree should run is decided in :mod:`experiment_core.deploy.worktree`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from experiment_core.deploy import filter_driver as fd
from experiment_core.fsutil import atomic_write
from experiment_core.gitio import Git
from experiment_core.hookenv import STATE_DIR

BACKUP_REFS = "refs/experiments/backups"
KEPT_REFS = "refs/experiments/kept"


def backup_ref(exp_id: str, index: int) -> str:
    return f"{BACKUP_REFS}/{exp_id}/{index}"


def backup_targets(git: Git, exp_id: str, targets: list[str]) -> dict[str, str]:
    """Store each target's current content as a blob, kept alive by a ref; return target -> blob id."""
    backups: dict[str, str] = {}
    for index, target in enumerate(targets):
        blob = git.hash_object((git.root / target).read_bytes())
        git.update_ref(backup_ref(exp_id, index), blob, message=f"experiment-hook: backup of {target}")
        backups[target] = blob
    return backups


# ---- content ids ---------------------------------------------------------------------------------------
def blob_id(data: bytes, like: str = "") -> str:
    """git's blob id of ``data`` computed in-process (no git process): SHA-1, or SHA-256 when ``like`` is a
    64-character id from a SHA-256 repository. Equal to ``git hash-object`` for the same object format."""
    header = b"blob %d\0" % len(data)
    h = hashlib.sha256() if len(like) == 64 else hashlib.sha1()
    h.update(header)
    h.update(data)
    return h.hexdigest()


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


# ---- the index ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexEntry:
    path: str
    blob: str
    mode: str
    skip_worktree: bool  # only clones of the skip-worktree design (0.1) have it: see :func:`migrate`
    stage: int


def parse_ls_files(text: str) -> dict[str, IndexEntry]:
    """Parse ``git ls-files -s -v -z`` output: ``TAG MODE BLOB STAGE\tPATH``; tag ``S`` = skip-worktree."""
    entries: dict[str, IndexEntry] = {}
    for record in text.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        parts = meta.split()
        if len(parts) != 4:
            continue
        tag, mode, blob, stage = parts
        entry = IndexEntry(path, blob, mode, tag.upper() == "S", int(stage))
        if path not in entries or entry.stage == 0:
            entries[path] = entry
    return entries


def index_entries(git: Git, paths: Iterable[str]) -> dict[str, IndexEntry]:
    """The index entries of ``paths`` (one git process); an untracked path is absent from the result."""
    names = sorted(set(paths))
    if not names:
        return {}
    out = git.run("ls-files", "-s", "-v", "-z", "--", *names).decode("utf-8", "surrogateescape")
    return parse_ls_files(out)


def show_to_git(git: Git, paths: Iterable[str]) -> None:
    """Clear the skip-worktree bits of ``paths`` (the mechanism of 0.1): git sees their content again."""
    names = sorted(set(paths))
    if names:
        git.run("update-index", "--no-skip-worktree", "--", *names)


def keep_copy(git: Git, exp_id: str, data: bytes) -> str:
    """Store ``data`` as a blob kept alive by ``refs/experiments/kept/<exp>/<blob>``; return the blob id."""
    blob = git.hash_object(data)
    git.update_ref(f"{KEPT_REFS}/{exp_id}/{blob}", blob, message="experiment-hook: copy of a user's edit")
    return blob


def committed_content(git: Git, entry: IndexEntry) -> bytes:
    """The content git has for a target (its index blob: the committed content, whatever is on disk)."""
    return git.cat_blob(entry.blob)


# ---- the filter driver: configuration ------------------------------------------------------------------
ATTR_COMMENT = "# experiment-hook: experimented files (removed by `experiment-hook uninstall`)"
RACY_BACKDATE_NS = 2_000_000_000
FILTER_SCRIPT = "experiment-hook-filter.py"  # in the git common dir: no branch, venv or pip can remove it


def attr_line(target: str) -> str:
    escaped = "".join(f"\\{c}" if c in " \\*?[#!" else c for c in target)
    return f"/{escaped} filter={fd.DRIVER}"


def base_interpreter() -> str:
    """The interpreter behind this one (a virtualenv's python is a link to it): stays when the venv goes."""
    import sys

    base = getattr(sys, "_base_executable", "") or sys.executable
    return os.path.realpath(base if os.path.exists(base) else sys.executable)


def filter_command(git: Git) -> str:
    script = git.common_dir.resolve() / FILTER_SCRIPT
    return f"{shlex.quote(base_interpreter())} -I -S {shlex.quote(str(script))}"


def _attributes_path(git: Git) -> Path:
    return git.common_dir.resolve() / "info" / "attributes"


def ensure_filter(git: Git, targets: Iterable[str]) -> bool:
    """Configure the filter for ``targets`` (local config, ``info/attributes``, the script in the common dir);
    idempotent and cheap when already done (one git process). True when something changed.

    ``required = true``: a clean that cannot run fails git's command (naming the file) instead of storing the
    treatment; the command is an absolute interpreter and a stdlib-only script in the git dir, so it does not
    vanish with a virtualenv, a package or a branch."""
    changed = False
    script = git.common_dir.resolve() / FILTER_SCRIPT
    source = Path(fd.__file__).read_bytes()
    if read_bytes(script) != source:
        atomic_write(script, source)
        changed = True
    have = dict(
        line.partition(" ")[::2]
        for line in git.out("config", "--local", "--get-regexp", rf"^filter\.{fd.DRIVER}\.", check=False).splitlines()
    )
    want = {f"filter.{fd.DRIVER}.process": filter_command(git), f"filter.{fd.DRIVER}.required": "true"}
    for key, value in want.items():
        if have.get(key) != value:
            git.run("config", "--local", key, value)
            changed = True
    path = _attributes_path(git)
    text = (read_bytes(path) or b"").decode("utf-8", "surrogateescape")
    lines = text.splitlines()
    missing = [attr_line(t) for t in sorted(set(targets)) if attr_line(t) not in lines]
    if missing:
        head = [] if ATTR_COMMENT in lines else [ATTR_COMMENT]
        body = text if not text or text.endswith("\n") else text + "\n"
        atomic_write(path, (body + "\n".join(head + missing) + "\n").encode("utf-8", "surrogateescape"))
        changed = True
    return changed


def remove_filter(git: Git) -> None:
    """Take the filter out of the local config and ``info/attributes`` and delete the script."""
    git.run("config", "--local", "--remove-section", f"filter.{fd.DRIVER}", check=False)
    path = _attributes_path(git)
    data = read_bytes(path)
    if data is not None:
        suffix = f" filter={fd.DRIVER}"
        kept = [line for line in data.decode("utf-8", "surrogateescape").splitlines()
                if line != ATTR_COMMENT and not line.endswith(suffix)]  # fmt: skip
        atomic_write(path, ("".join(f"{line}\n" for line in kept)).encode("utf-8", "surrogateescape"))
    with contextlib.suppress(FileNotFoundError):
        (git.common_dir.resolve() / FILTER_SCRIPT).unlink()


# ---- the filter driver: what this worktree deploys --------------------------------------------------------
def filter_state(git: Git) -> fd.State:
    return fd.State(str(git.git_path(STATE_DIR) / fd.FILTER_DIR))


@dataclass(frozen=True)
class Deployed:
    """A target whose treatment this worktree runs: the experiment, the base (backup) and the treatment."""

    exp: str
    base: str
    treatment: str
    on: bool = True  # False while the tool takes the variant out: smudge writes control, clean still maps back

    def leaving(self) -> Deployed:
        return Deployed(self.exp, self.base, self.treatment, on=False)


def read_deployed(state: fd.State) -> dict[str, Deployed]:
    """The records the tool wrote (a record being taken out does not count)."""
    return {t: Deployed(*r[:3]) for t, r in state.deployed().items() if r[3]}


def write_deployed(state: fd.State, records: Mapping[str, Deployed]) -> None:
    """Write the ``deployed`` file, and trim the map to what clean may still need."""
    text = "".join(f"{t}\t{r.exp}\t{r.base}\t{r.treatment}{'' if r.on else chr(9) + 'off'}\n"
                   for t, r in sorted(records.items()))  # fmt: skip
    atomic_write(Path(state.path(fd.DEPLOYED)), text.encode("utf-8", "surrogateescape"))
    lines = fd._read_lines(state.path(fd.MAP))
    kept: list[list[str]] = []
    for target in records:
        kept += [line for line in lines if line[0] == target][-fd.MAP_KEPT :]
    if len(kept) != len(lines):
        text = "".join("\t".join(x) + "\n" for x in kept)
        atomic_write(Path(state.path(fd.MAP)), text.encode("utf-8", "surrogateescape"))


def redeploy(git: Git, state: fd.State, before: Mapping[str, Deployed], after: Mapping[str, Deployed],
             targets: Iterable[str]) -> None:
    """Go from records ``before`` to ``after`` and rewrite ``targets`` through git. A record that goes is
    marked as leaving until its file is rewritten: a crash in between never leaves git seeing the treatment."""
    names = sorted(set(targets))
    leaving = {t: before[t].leaving() for t in names if t in before and t not in after}
    if leaving:
        write_deployed(state, {**after, **leaving})
    else:
        write_deployed(state, after)
    checkout(git, names)
    if leaving:
        write_deployed(state, after)


def record_for(state: fd.State, exp: str, base: bytes, treatment: bytes) -> Deployed:
    return Deployed(exp, state.put_blob(base), state.put_blob(treatment))


def take_conflicts(state: fd.State) -> list[tuple[str, str]]:
    """(target, experiment) pairs whose treatment did not merge onto the committed content since the last call."""
    path = Path(state.path(fd.CONFLICTS))
    lines = fd._read_lines(str(path))
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return sorted({(line[0], line[1]) for line in lines if len(line) == 3})


def modified(git: Git, targets: Iterable[str]) -> set[str]:
    """Targets git sees as changed against the index (through the filter: a deployed variant is unchanged; a
    user's edit is changed). A target whose clean refuses (an edit over the treatment's lines) counts too."""
    names = sorted(set(targets))
    if not names:
        return set()
    # porcelain diff compares content when only the stat changed (plumbing diff-files would list such files)
    proc = git.call("diff", "--no-ext-diff", "--no-textconv", "--name-only", "-z", "--", *names)
    if proc.returncode == 0:
        return {n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n}
    if len(names) == 1:
        return set(names)
    return {n for n in names if modified(git, [n])}


def checkout(git: Git, targets: Iterable[str]) -> None:
    """Rewrite ``targets`` from the index through git (so the smudge runs and the index records the new stat).
    The file's stat is made stale first: git skips a stat-clean file. Callers make sure no edit is in them.
    No hook runs for it (pre-commit's post-checkout would stash and restore the whole work tree around it)."""
    names = sorted(set(targets))
    if not names:
        return
    for name in names:
        with contextlib.suppress(OSError):
            os.utime(git.root / name, (1, 1), follow_symlinks=False)
    git.run("-c", f"core.hooksPath={os.devnull}", "checkout", "--", *names)
    unracy(git, names)


def unracy(git: Git, targets: Iterable[str]) -> None:
    """A file written in the same second as the index is "racily clean": git re-reads it on every command (here:
    starts the filter, ~30 ms) until the index is written again in a later second, which `git status` and an
    empty commit never do. Date such files a little back and let git record that once, here."""
    try:
        index_sec = int(git.git_path("index").stat().st_mtime)
    except OSError:
        return
    racy = False
    for name in sorted(set(targets)):
        with contextlib.suppress(OSError):
            st = os.stat(git.root / name, follow_symlinks=False)
            if int(st.st_mtime) >= index_sec:
                os.utime(git.root / name, ns=(st.st_atime_ns, st.st_mtime_ns - RACY_BACKDATE_NS),
                         follow_symlinks=False)  # fmt: skip
                racy = True
    if racy:
        git.call("-c", f"core.hooksPath={os.devnull}", "update-index", "-q", "--refresh")


def cleaned(state: fd.State, target: str, data: bytes) -> bytes | None:
    """What git stores for ``data`` in ``target`` (the user's edit on top of the control), or None when the edit
    overlaps the treatment's lines."""
    try:
        return fd.clean(state, target, data)
    except fd.Refused:
        return None
