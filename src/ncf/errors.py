"""Exceptions a user can cause. Each carries a one-line message that says what is wrong and how to fix it."""

from __future__ import annotations


class NcfError(Exception):
    """Base class: a problem caused by input, not a bug. The CLI prints it as one line and exits 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        if self.hint:
            text += f"; {self.hint.rstrip('.')}"
        return " ".join(text.split())


class DataError(NcfError):
    """A data file, column or value is wrong."""


class DownloadError(NcfError):
    """A download failed or did not verify."""


class ConfigError(NcfError):
    """A configuration key, type or value is wrong."""


class UsageError(NcfError):
    """A command-line flag or API argument is wrong."""


class UnknownIdError(NcfError):
    """A raw user or item id is not known to the model."""

    def __init__(self, kind: str, ids: list, hint: str | None = None) -> None:
        shown = ", ".join(repr(i) for i in ids[:5]) + (" ..." if len(ids) > 5 else "")
        self.kind = kind
        self.ids = ids
        super().__init__(f"unknown {kind} id(s): {shown}", hint or f"use {kind} ids that appear in the training data")


class BundleError(NcfError):
    """A saved model bundle is missing, damaged or unsafe."""


def closest(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The closest choice to a misspelled word, or None."""
    import difflib

    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return found[0] if found else None
