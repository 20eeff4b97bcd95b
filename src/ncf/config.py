"""Validated configuration that round-trips to TOML and JSON (kept apart from learned state)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Self

import tomli_w
from pydantic import BaseModel, ConfigDict, ValidationError

from ncf._io import atomic_write_text
from ncf.errors import ConfigError, closest


class Config(BaseModel):
    """Base for every config: unknown keys are refused with a suggestion; values are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Self:
        """Validate a plain dict; errors become one-line ConfigErrors."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise config_error(exc, cls, source) from None

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """Read a .toml or .json file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist", "check the path")
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix != ".json" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}",
                              "fix the syntax") from None
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON/TOML-ready dict (None values dropped)."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_file(self, path: str | Path) -> Path:
        """Write atomically as TOML (or JSON when the suffix is .json)."""
        path = Path(path)
        data = self.to_dict()
        text = json.dumps(data, indent=2) if path.suffix == ".json" else tomli_w.dumps(data)
        return atomic_write_text(path, text)


def config_error(exc: ValidationError, cls: type[BaseModel], source: str) -> ConfigError:
    """Translate the first pydantic error into a one-line ConfigError with a fix."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(root)"
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        guess = closest(key, list(cls.model_fields))
        hint = f"did you mean '{guess}'?" if guess else f"valid keys: {', '.join(cls.model_fields)}"
        return ConfigError(f"unknown key '{loc}' in {source}", hint)
    return ConfigError(f"bad value for '{loc}' in {source}: {err['msg']} (got {err.get('input')!r})",
                       "fix the value")
