"""The real Claude Code CLI for the tests: where it is, and one ``claude -p`` session against a test's model server.

Pinned: ``npm install --prefix .ci/node @anthropic-ai/claude-code@2.1.328`` (``.ci/run`` does it).
``EXPERIMENT_HOOK_CLAUDE_CLI`` names another binary. Missing, the tests fail under CI (``CI`` set) and skip elsewhere,
as the browser test of the report does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT, cli_env
from tests.model_server import ModelServer

CLI_ENV = "EXPERIMENT_HOOK_CLAUDE_CLI"
PINNED = "@anthropic-ai/claude-code@2.1.328"


def find_cli() -> str | None:
    named = os.environ.get(CLI_ENV)
    if named:
        return named if os.access(named, os.X_OK) else None
    local = PROJECT / ".ci" / "node" / "node_modules" / ".bin" / "claude"
    if os.access(local, os.X_OK):
        return str(local)
    return shutil.which("claude")


def require_cli() -> str:
    found = find_cli()
    if found is None:
        fix = f"npm install --prefix .ci/node {PINNED} (or set {CLI_ENV})"
        if os.environ.get("CI"):
            pytest.fail(f"the Claude Code CLI is required in CI: {fix}")
        pytest.skip(f"the Claude Code CLI is not installed: {fix}; required when CI is set")
    return found


@dataclass
class Session:
    result: dict[str, Any]
    wall: float
    stderr: str


@dataclass
class ClaudeCli:
    binary: str
    home: Path
    server: ModelServer

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = cli_env(extra)
        for name in list(env):
            if name.startswith(("CLAUDE", "ANTHROPIC_")):
                del env[name]
        env.update({"HOME": str(self.home), "ANTHROPIC_BASE_URL": self.server.url, "ANTHROPIC_API_KEY": "test-key",
                    "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})  # fmt: skip
        return env

    def run(self, repo: Path, prompt: str, *args: str, env: dict[str, str] | None = None) -> Session:
        started = time.monotonic()
        proc = subprocess.run([self.binary, "-p", prompt, "--output-format", "json", *args], cwd=repo,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, env=self.env(env),
                              timeout=120)  # fmt: skip
        wall = time.monotonic() - started
        assert proc.returncode == 0, f"claude exited {proc.returncode}: {proc.stderr}\n{proc.stdout}"
        return Session(json.loads(proc.stdout), wall, proc.stderr)
