"""The one error type users see: one line, exit code 2, nothing changed."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user or a remote: printed as one line, exit code 2.

    Raise it *before* any file or ref is changed; every writer in this package validates first.
    """

    exit_code = 2

    def __init__(self, where: str, what: str, fix: str = "") -> None:
        self.where = where
        self.what = what
        self.fix = fix
        super().__init__(self.line())

    def line(self) -> str:
        text = f"{self.where}: {self.what}"
        return f"{text} — {self.fix}" if self.fix else text
