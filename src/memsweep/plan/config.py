"""Load and check a sweep config: safe YAML, the JSON schema, then the plan's own checks.

Errors name the key and what is allowed, e.g.
``sweep.storage[1]: 'csx' is not one of ['dense', 'csr', 'csc', 'coo']``.
The workflow validates with Snakemake's ``validate`` against the same schema.
"""

from __future__ import annotations

from pathlib import Path

import yaml

SCHEMA = Path(__file__).with_name("config.schema.yaml")  # package data: works installed too


class ConfigError(ValueError):
    """A config that cannot be run; ``str()`` names the key and what is allowed."""


def _key(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def check(config: dict) -> dict:
    """Validate ``config`` against the schema and fill in defaults; raise ConfigError."""
    import jsonschema

    if not isinstance(config, dict):
        raise ConfigError(
            f"(top level): expected a mapping of sections, got {type(config).__name__}"
        )
    schema = yaml.safe_load(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        messages = []
        for error in errors:
            message = error.message
            if error.validator == "additionalProperties":
                allowed = sorted(error.schema.get("properties", {}))
                message += f"; allowed keys: {allowed}"
            messages.append(f"{_key(error.absolute_path)}: {message}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(messages))
    for section in ("model", "budget"):
        defaults = schema["properties"][section]["properties"]
        for key, rule in defaults.items():
            if "default" in rule:
                config.setdefault(section, {}).setdefault(key, rule["default"])
    return config


def load(path: str | Path) -> dict:
    """Read (safe YAML) and check one config file."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: no such config file") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    return check(config)
