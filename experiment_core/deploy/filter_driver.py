"""The git filter driver that deploys variants: git's long-running ``filter.<driver>.process`` protocol (v2).

Standard library only, and runnable on its own: ``install`` copies this file into the git common dir and points
``filter.experiment-hook.process`` at it with an absolute interpreter, so neither a branch switch, a removed
virtualenv nor an uninstalled package can make the filter vanish. One process serves a whole git command; git
starts it only when a file with ``filter=experiment-hook`` (set in ``$GIT_COMMON_DIR/info/attributes``) needs
converting, so a stat-clean ``git status`` never starts it.

Per worktree (``<git-dir>/experiment-hook/filter/``):

* ``deployed``: ``path<TAB>exp<TAB>base-id<TAB>treatment-id`` for each target whose treatment this worktree runs
  (a fifth field ``off`` while the tool takes it out: smudge writes the committed content, clean still maps back);
* ``blobs/<id>``: content by id (the backup = base, the treatment, and what the filter wrote and mapped back);
* ``map``: ``path<TAB>deployed-id<TAB>committed-id`` appended by every smudge (clean's way back);
* ``conflicts``: ``path<TAB>exp<TAB>committed-id`` appended when the treatment no longer merges onto the control.

smudge (committed content C -> work tree): the treatment as a change, ``git merge-file`` of C with the treatment
T on the base B; on a conflict, C itself (this unit runs control; the next hook tells the user).
clean (work tree W -> content git stores): a W the filter wrote maps back to its C; any other W is the user's
edit on top of the deployed D, carried onto C by the reverse merge (C, base D, W; a line the user retuned where
the treatment changed it is taken as the user's). When that still conflicts, clean fails with one line naming
the file: git refuses to stage it, the treatment is never stored, the edit stays; for a read-only git command
(status, diff: its command line in /proc) the file passes through instead, so that it shows as changed.
A path without a ``deployed`` line passes through unchanged.
"""

from __future__ import annotations

import hashlib
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

DRIVER = "experiment-hook"
STATE_DIR = "experiment-hook"  # same as hookenv.STATE_DIR (not imported: this file runs on its own)
FILTER_DIR = "filter"
DEPLOYED = "deployed"
MAP = "map"
CONFLICTS = "conflicts"
BLOBS = "blobs"
MAX_PACKET = 65516
MAP_KEPT = 64  # map lines kept per path when the tool rewrites the map


class Refused(Exception):
    """clean cannot carry the user's edit onto the committed content: the message is the one line to show."""


def content_id(data: bytes) -> str:
    """git's SHA-1 blob id of ``data`` (the filter's own key, whatever the repository's object format)."""
    h = hashlib.sha1(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


# ---- the state of one worktree --------------------------------------------------------------------------
def find_state(cwd: str, env: dict[str, str] | os._Environ[str]) -> str | None:
    """``<git-dir>/experiment-hook/filter`` of the worktree git runs the filter in (no git process)."""
    git_dir = env.get("GIT_DIR")
    if git_dir:
        git_dir = os.path.join(cwd, git_dir)
    else:
        dot_git = os.path.join(cwd, ".git")
        if os.path.isdir(dot_git):
            git_dir = dot_git
        else:
            try:
                with open(dot_git, encoding="utf-8") as f:
                    line = f.readline().strip()
            except OSError:
                return None
            if not line.startswith("gitdir:"):
                return None
            git_dir = os.path.join(cwd, line[len("gitdir:") :].strip())
    return os.path.join(git_dir, STATE_DIR, FILTER_DIR)


def _read_lines(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except OSError:
        return []


class State:
    """What the filter of one worktree knows; every read is a small local file."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def deployed(self) -> dict[str, tuple[str, str, str, bool]]:
        """path -> (experiment, base id, treatment id, on)."""
        return {p[0]: (p[1], p[2], p[3], len(p) == 4) for p in _read_lines(self.path(DEPLOYED)) if len(p) in (4, 5)}

    def pairs(self, target: str) -> list[tuple[str, str]]:
        """(deployed id, committed id) pairs of ``target``, oldest first."""
        return [(p[1], p[2]) for p in _read_lines(self.path(MAP)) if len(p) == 3 and p[0] == target]

    def blob(self, cid: str) -> bytes | None:
        try:
            with open(os.path.join(self.directory, BLOBS, cid), "rb") as f:
                return f.read()
        except OSError:
            return None

    def put_blob(self, data: bytes) -> str:
        cid = content_id(data)
        directory = os.path.join(self.directory, BLOBS)
        final = os.path.join(directory, cid)
        if not os.path.exists(final):
            os.makedirs(directory, exist_ok=True)
            tmp = f"{final}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, final)
        return cid

    def append(self, name: str, fields: list[str]) -> None:
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.path(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, ("\t".join(fields) + "\n").encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)


# ---- the two conversions --------------------------------------------------------------------------------
def _hunks(base: list[bytes], other: list[bytes]) -> list[tuple[int, int, list[bytes]]]:
    """(start, end, replacement) of each change from ``base`` to ``other``, in base line numbers."""
    from difflib import SequenceMatcher

    ops = SequenceMatcher(None, base, other, autojunk=False).get_opcodes()
    return [(i1, i2, other[j1:j2]) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two changed base ranges touch the same lines (an insertion is an empty range at its point)."""
    if a[0] == a[1] and b[0] == b[1]:
        return a[0] == b[0]
    if a[0] == a[1]:
        return b[0] < a[0] < b[1]
    if b[0] == b[1]:
        return a[0] < b[0] < a[1]
    return a[0] < b[1] and b[0] < a[1]


def _apply(base: list[bytes], start: int, end: int, hunks: list[tuple[int, int, list[bytes]]]) -> list[bytes]:
    out: list[bytes] = []
    pos = start
    for i1, i2, lines in hunks:
        out += base[pos:i1] + lines
        pos = i2
    return out + base[pos:end]


def merge3(ours: bytes, base: bytes, theirs: bytes, theirs_lines_win: bool = False) -> bytes | None:
    """Three-way merge by lines: both sides' changes to ``base`` applied; None when they change the same lines
    differently. Unlike ``git merge-file`` (whose xdiff calls *adjacent* changes a conflict), changes to
    neighbouring lines merge: a teammate's edit of the line above the treatment's line flows in.

    ``theirs_lines_win``: where both sides changed the same lines and the three versions of them have as many
    lines, each line ``theirs`` changed is taken from ``theirs``, every other from ``ours`` (clean: the user
    retuned a line the treatment changed, and only the user's own lines go on top of the control)."""
    if base == theirs or ours == theirs:
        return ours
    if base == ours:
        return theirs
    b, o, t = base.splitlines(keepends=True), ours.splitlines(keepends=True), theirs.splitlines(keepends=True)
    tagged = sorted([(h, 0) for h in _hunks(b, o)] + [(h, 1) for h in _hunks(b, t)], key=lambda x: x[0][:2])
    groups: list[list[tuple[tuple[int, int, list[bytes]], int]]] = []
    for item in tagged:
        if groups and any(_overlap(item[0][:2], other[0][:2]) for other in groups[-1]):
            groups[-1].append(item)
        else:
            groups.append([item])
    out: list[bytes] = []
    pos = 0
    for group in groups:
        start = min(h[0] for h, _ in group)
        end = max(h[1] for h, _ in group)
        sides = [[h for h, side in group if side == s] for s in (0, 1)]
        if sides[0] and sides[1]:
            mine, yours = _apply(b, start, end, sides[0]), _apply(b, start, end, sides[1])
            if mine == yours:
                chunk = mine
            elif theirs_lines_win and len(mine) == len(yours) == end - start:
                chunk = [y if y != b[start + i] else m for i, (m, y) in enumerate(zip(mine, yours, strict=True))]
            else:
                return None
        else:
            chunk = _apply(b, start, end, sides[0] or sides[1])
        out += b[pos:start] + chunk
        pos = end
    return b"".join(out + b[pos:])


def smudge(state: State, target: str, committed: bytes) -> bytes:
    """What this worktree's file holds for ``committed`` content of ``target``."""
    record = state.deployed().get(target)
    if record is None or not record[3]:
        return committed
    exp, base_id, treatment_id, _ = record
    base, treatment = state.blob(base_id), state.blob(treatment_id)
    if base is None or treatment is None:
        merged = None
    else:
        merged = merge3(committed, base, treatment)
    cid = state.put_blob(committed)
    if merged is None:
        state.append(CONFLICTS, [target, exp, cid])
        merged = committed
    state.put_blob(merged)
    state.append(MAP, [target, content_id(merged), cid])
    return merged


def clean(state: State, target: str, work: bytes) -> bytes:
    """What git stores for the work-tree bytes ``work`` of ``target``. Raises :class:`Refused`."""
    if target not in state.deployed():
        return work
    pairs = state.pairs(target)
    if not pairs:
        return work  # nothing deployed into the file yet: it holds the committed content
    wid = content_id(work)
    for deployed_id, committed_id in reversed(pairs):
        if deployed_id == wid:
            committed = state.blob(committed_id)
            if committed is not None:
                return committed
    if any(committed_id == wid for _, committed_id in pairs):
        return work  # a committed content itself (the file was written while nothing was deployed)
    deployed_id, committed_id = pairs[-1]
    deployed, committed = state.blob(deployed_id), state.blob(committed_id)
    if deployed is None or committed is None:
        raise Refused(f"{target}: the experiment's filter state is damaged; run `experiment-hook restore`")
    result = merge3(committed, deployed, work, theirs_lines_win=True)
    if result is None and _read_only_caller():
        return work  # `git status`/`git diff` must not fail: they show the file as changed; staging refuses
    if result is None:
        exp = state.deployed()[target][0]
        raise Refused(
            f"{target}: your edit overlaps the lines the treatment of {exp} changes, so it cannot be committed "
            f"on top of the control; nothing was staged and your edit stays in the file. Put the change into "
            f".experiments/{exp}/{target} to test it, or run `experiment-hook restore {exp}` to see your edit "
            "with the treatment in plain git"
        )
    state.put_blob(work)
    state.append(MAP, [target, wid, state.put_blob(result)])  # the edit's own pair: later edits build on it
    return result


READ_ONLY = frozenset({"status", "diff", "diff-files", "diff-index", "show", "log", "describe", "blame", "difftool",
                       "grep", "ls-files", "whatchanged", "shortlog", "update-index"})  # fmt: skip
_GLOBAL_WITH_VALUE = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path"})


def git_subcommand(argv: list[str]) -> str:
    """The subcommand of a ``git`` command line (global options skipped); empty when there is none."""
    rest = argv[1:]
    while rest:
        arg = rest.pop(0)
        if arg in _GLOBAL_WITH_VALUE:
            if rest:
                rest.pop(0)
        elif not arg.startswith("-"):
            return arg
    return ""


def _read_only_caller() -> bool:
    """Whether the git command that started this filter only reads (Linux: its command line in /proc). Anywhere
    else, or when unsure, False: refusing is the safe answer."""
    pid = os.getppid()
    for _ in range(2):  # git starts the filter through `sh -c` (its command has spaces): then the shell's parent
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a for a in f.read().decode("utf-8", "replace").split("\0") if a]
            if not argv or os.path.basename(argv[0]) not in ("sh", "dash", "bash"):
                break
            with open(f"/proc/{pid}/stat", "rb") as f:
                pid = int(f.read().rpartition(b")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    else:
        return False
    if not argv or os.path.basename(argv[0]) != "git":
        return False
    name = git_subcommand(argv)
    if name == "update-index":
        return "--refresh" in argv or "--really-refresh" in argv
    return name in READ_ONLY


# ---- protocol v2 (pkt-line) -----------------------------------------------------------------------------
class Eof(Exception):
    pass


def read_packet(inp: BinaryIO) -> bytes | None:
    """One pkt-line payload; None for a flush packet."""
    head = inp.read(4)
    if len(head) < 4:
        raise Eof
    size = int(head, 16)
    if size == 0:
        return None
    if size < 4:
        return b""  # delim/response-end: not used by the filter protocol
    data = inp.read(size - 4)
    if len(data) < size - 4:
        raise Eof
    return data


def read_text_list(inp: BinaryIO) -> list[str]:
    lines: list[str] = []
    while True:
        packet = read_packet(inp)
        if packet is None:
            return lines
        lines.append(packet.decode("utf-8", "surrogateescape").rstrip("\n"))


def read_content(inp: BinaryIO) -> bytes:
    chunks: list[bytes] = []
    while True:
        packet = read_packet(inp)
        if packet is None:
            return b"".join(chunks)
        chunks.append(packet)


def write_packet(out: BinaryIO, payload: bytes | None) -> None:
    if payload is None:
        out.write(b"0000")
    else:
        out.write(b"%04x" % (len(payload) + 4) + payload)


def write_text(out: BinaryIO, *lines: str) -> None:
    for line in lines:
        write_packet(out, (line + "\n").encode("utf-8", "surrogateescape"))
    write_packet(out, None)


def write_content(out: BinaryIO, data: bytes) -> None:
    for start in range(0, len(data), MAX_PACKET):
        write_packet(out, data[start : start + MAX_PACKET])
    write_packet(out, None)


def handshake(inp: BinaryIO, out: BinaryIO) -> None:
    hello = read_text_list(inp)
    if "git-filter-client" not in hello or "version=2" not in hello:
        raise Eof
    write_text(out, "git-filter-server", "version=2")
    out.flush()
    offered = read_text_list(inp)
    write_text(out, *(c for c in ("capability=clean", "capability=smudge") if c in offered))
    out.flush()


def warn(message: str) -> None:
    try:
        sys.stderr.write("experiment-hook: " + " ".join(message.split("\n")) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def serve(inp: BinaryIO, out: BinaryIO, state: State | None) -> None:
    """Answer git's requests until it closes the pipe."""
    handshake(inp, out)
    while True:
        try:
            header = read_text_list(inp)
        except Eof:
            return
        fields = dict(line.partition("=")[::2] for line in header)
        data = read_content(inp)
        command, target = fields.get("command"), fields.get("pathname", "")
        try:
            if state is None or command not in ("clean", "smudge"):
                result = data
            elif command == "smudge":
                result = smudge(state, target, data)
            else:
                result = clean(state, target, data)
        except Refused as exc:
            warn(str(exc))
            write_text(out, "status=error")
            out.flush()
            continue
        except Exception as exc:  # a fault of ours: git fails this file (required) and says so; one line here
            warn(f"{target}: filter {command} failed ({type(exc).__name__}: {exc}); run `experiment-hook restore`")
            write_text(out, "status=error")
            out.flush()
            continue
        write_text(out, "status=success")
        write_content(out, result)
        write_packet(out, None)  # an empty list: the status stays "success"
        out.flush()


def main() -> int:
    directory = find_state(os.getcwd(), os.environ)
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer, State(directory) if directory else None)
    except (Eof, BrokenPipeError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
