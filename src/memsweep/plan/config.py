"""Load and check a sweep config: safe YAML, the JSON schema, then the plan's own checks.

Errors name the key and what is allowed, e.g.
``sweep.storage[1]: 'csx' is not one of ['dense', 'csr', 'csc', 'coo']``.
The schema is made from the code when a config is checked (:func:`schema`): the sweep's
axes and the model settings, with their values and defaults, from
:class:`memsweep.plan.jobs.Job`; the backends from their modules. The workflow checks
its config with :func:`check` too (``memsweep schema`` prints the schema).
"""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from memsweep.plan import jobs
from memsweep.world.checks import Checks

_JSON_TYPES = {int: "integer", float: "number", str: "string"}
_JSON_TYPES_WORDS = {"integer": "integer", "number": "number"}
COMPARE = {
    "baseline": {
        "type": "string",
        "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
        "description": "compare this sweep with the baseline saved under that name "
        "(memsweep baseline save NAME)",
    },
    "axis": {
        "type": "string",
        "pattern": r"^[a-z_]+=[^,=]+,[^,=]+$",
        "description": "compare two values of one axis within this sweep: AXIS=BASE,NEW "
        "(e.g. pymdp_version=1.0.0,1.0.4)",
    },
    "threshold": {
        "type": "number",
        "minimum": 0,
        "default": 5,
        "description": "the smallest change that counts, in percent of BASE",
    },
}
BUDGET = {
    "max_job_mb": {
        "type": "number",
        "exclusiveMinimum": 0,
        "default": 4000,
        "description": "a job predicted above this many MB is planned as over-budget; "
        "also its memory cap",
    }
}


class ConfigError(ValueError):
    """A config that cannot be run; ``str()`` names the key and what is allowed."""


BOUND_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def bounds_of(rule: dict) -> dict[str, float]:
    """The bounds a JSON schema ``rule`` holds (``{"minimum": 2, "maximum": 200}``)."""
    return {key: rule[key] for key in BOUND_KEYWORDS if key in rule}


def words(bounds: dict[str, float]) -> str:
    """JSON schema bounds in the words every error uses: ``at least 2 and at most 200``.

    The words are :class:`memsweep.world.checks.Checks`' own: NaN passes no comparison,
    so the check names every bound it holds. One phrasing for the ``--help`` text, the
    command line's errors, a Job's errors and ``config/README.md``.
    """
    return Checks({"value": bounds}).failure("value", math.nan) or ""


def bounds_text(name: str) -> str:
    """What Job setting ``name`` takes, in words: ``integer, at least 2 and at most 200``,
    or its choices (``one of dense, csr, csc, coo``)."""
    choices = jobs.choices(name)
    if choices is not None:
        more = (
            " or your own (package.module:function, or a .npz file)" if jobs.pattern(name) else ""
        )
        return "one of " + ", ".join(choices) + more
    kind = _JSON_TYPES[jobs.TYPES[name]]
    limits = words(jobs.bounds(name))
    return f"{kind}, {limits}" if limits else kind


def _values(name: str) -> dict:
    """The JSON schema of one value of Job setting ``name``: its choices, or type and bounds."""
    choices = jobs.choices(name)
    if choices is not None and jobs.pattern(name):
        return {
            "anyOf": [{"enum": list(choices)}, {"type": "string", "pattern": jobs.pattern(name)}]
        }
    if choices is not None:
        return {"enum": list(choices)}
    return {"type": _JSON_TYPES[jobs.TYPES[name]], **jobs.bounds(name)}


def schema() -> dict:
    """The JSON schema of a sweep config, made from the code (see the module docstring)."""
    described = {name: field.metadata["help"] for name, field in jobs.SETTINGS.items()}
    defaults = {name: jobs.SETTINGS[name].default for name in jobs.MODEL_SETTINGS}
    axes = {
        name: {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": _values(name),
            "description": described[name],
        }
        for name in jobs.SETTINGS
    }
    model = {
        name: {**_values(name), "default": default, "description": described[name]}
        for name, default in defaults.items()
    }

    def section(description: str, properties: dict, required=()) -> dict:
        rule = {"type": "object", "description": description, "additionalProperties": False}
        return {**rule, "required": list(required), "properties": properties}

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "memsweep sweep configuration (see config/README.md)",
        "type": "object",
        "additionalProperties": False,
        # A sweep names its axes; `model` and `budget` take their defaults, key by key.
        "required": ["sweep"],
        "properties": {
            "sweep": section(
                "axis -> list of values; every combination is planned; a model setting "
                "listed here is one more axis",
                axes,
                required=jobs.CORE_AXES,
            ),
            "also": {
                "type": "array",
                "minItems": 1,
                "description": "more sweeps, each the sweep with the axes it names replaced "
                "(e.g. the fixes at one size only); a combination planned twice runs once",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": axes,
                },
            },
            "model": section(
                "settings shared by every job (any may be promoted to a sweep axis)", model
            ),
            "budget": section("limits of the sweep", BUDGET),
            "compare": section(
                "a comparison the workflow writes beside the report (memsweep compare): "
                "with a saved baseline, or between two values of an axis",
                COMPARE,
            ),
        },
    }


def _allowed(path) -> str:
    """`` (allowed: integer, at least 2 and at most 200)`` for the setting at ``path``."""
    names = [part for part in path if isinstance(part, str)]
    name = names[-1] if names else None
    if name in jobs.SETTINGS:
        return f" (allowed: {bounds_text(name)})"
    if name in BUDGET:
        rule = BUDGET[name]
        return f" (allowed: {_JSON_TYPES_WORDS[rule['type']]}, {words(bounds_of(rule))})"
    return ""


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
    rules = schema()
    validator = jsonschema.Draft202012Validator(rules)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        messages = []
        for error in errors:
            message = error.message
            if error.validator == "additionalProperties":
                allowed = sorted(error.schema.get("properties", {}))
                message += f"; allowed keys: {allowed}"
            elif error.validator in (*BOUND_KEYWORDS, "type", "anyOf"):
                message += _allowed(error.absolute_path)
            messages.append(f"{_key(error.absolute_path)}: {message}")
        if len(messages) == 1:
            raise ConfigError(f"invalid config: {messages[0]}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(messages))
    _check_also(config)
    _check_compare(config)
    for section in ("model", "budget"):
        for key, rule in rules["properties"][section]["properties"].items():
            config.setdefault(section, {}).setdefault(key, rule["default"])
    return config


def _check_compare(config: dict) -> None:
    """A comparison names what it compares with: a baseline or an axis, one of them."""
    if "compare" not in config:
        return
    named = [key for key in ("baseline", "axis") if key in config["compare"]]
    if len(named) != 1:
        raise ConfigError(
            "invalid config: compare: give baseline (a saved baseline's name) or axis "
            f"(AXIS=BASE,NEW), one of them; got {named or 'neither'}"
        )
    config["compare"].setdefault("threshold", COMPARE["threshold"]["default"])


def _check_also(config: dict) -> None:
    """Each ``also`` sweep replaces axes of ``sweep``: it may not add one, since a new
    axis would be a folder level that the main sweep's outputs lack."""
    axes = list(config["sweep"])
    problems = [
        f"also[{index}].{key}: not an axis of sweep (its axes: {', '.join(axes)})"
        for index, block in enumerate(config.get("also", []))
        for key in block
        if key not in axes
    ]
    if len(problems) == 1:
        raise ConfigError(f"invalid config: {problems[0]}")
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def load(path: str | Path) -> dict:
    """Read (safe YAML) and check one config file."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError as error:
        raise ConfigError(f"{path}: no such config file") from error
    except IsADirectoryError as error:
        raise ConfigError(f"{path}: is a folder, not a config file") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file ({error})") from error
    except yaml.YAMLError as error:
        reason = " ".join(str(error).split())  # one line: YAML's message spans several
        raise ConfigError(f"{path}: not valid YAML: {reason}") from error
    if config is None:
        raise ConfigError(f"{path}: the config file is empty; see config/README.md")
    try:
        return check(config)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error
