"""Checks of settings' values, with bounds in JSON schema's words (``minimum``,
``exclusiveMaximum``…), so that one declaration serves a check and a config schema."""

from __future__ import annotations

import operator

# Each JSON schema bound: its test and its words.
_BOUND_TESTS = {
    "minimum": (operator.ge, "at least"),
    "maximum": (operator.le, "at most"),
    "exclusiveMinimum": (operator.gt, "above"),
    "exclusiveMaximum": (operator.lt, "below"),
}


def _is_in(value, choices) -> bool:
    return value in choices


def _getter(names: list[str]):
    """A function: an object -> the tuple of its ``names`` attributes, in one call."""
    if len(names) < 2:
        return lambda settings: tuple(getattr(settings, name) for name in names)
    return operator.attrgetter(*names)


class Checks:
    """The tests of some settings' values: ``bounds`` (setting -> JSON schema bounds, e.g.
    ``{"grid": {"minimum": 2}}``) and closed lists of ``choices`` (setting -> values)."""

    def __init__(
        self, bounds: dict[str, dict[str, float]], choices: dict[str, tuple] | None = None
    ):
        self.bounds, self.choices = bounds, choices or {}
        # One flat list of (setting, test, argument): objects are checked by the thousand
        # when a sweep is planned.
        self._tests = [(name, _is_in, values) for name, values in self.choices.items()]
        self._tests += [
            (name, _BOUND_TESTS[key][0], bound)
            for name, limits in bounds.items()
            for key, bound in limits.items()
        ]
        self._values = _getter([name for name, _, _ in self._tests])

    def failure(self, name: str, value) -> str | None:
        """What ``value`` of setting ``name`` fails, in words (``at least 2``), or None."""
        if name in self.choices and value not in self.choices[name]:
            return f"one of {self.choices[name]}"
        failed = [
            f"{_BOUND_TESTS[key][1]} {bound}"
            for key, bound in self.bounds.get(name, {}).items()
            if not _BOUND_TESTS[key][0](value, bound)
        ]
        return " and ".join(failed) or None

    def check(self, settings: object) -> None:
        """Raise ValueError naming the first setting (attribute) of ``settings`` that fails."""
        for (name, passes, argument), value in zip(
            self._tests, self._values(settings), strict=True
        ):
            if not passes(value, argument):
                raise ValueError(f"{name} must be {self.failure(name, value)}, got {value!r}")
