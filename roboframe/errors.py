"""The exception hierarchy. Every error a user can cause is a RoboframeError."""

from __future__ import annotations


class RoboframeError(Exception):
    """Base of every error roboframe raises on purpose."""


class ConfigError(RoboframeError):
    """A robot definition is wrong. Carries one or more located problems."""

    def __init__(self, problems: list[ConfigProblem] | str, path: str | None = None) -> None:
        if isinstance(problems, str):
            problems = [ConfigProblem(path=path, line=None, field="", message=problems)]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigProblem:
    """One mistake in a robot file: where it is, what is wrong, how to fix it."""

    __slots__ = ("field", "hint", "line", "message", "path")

    def __init__(
        self,
        path: str | None,
        line: int | None,
        field: str,
        message: str,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where = f"{where or '<config>'}:{self.line}"
        field = f"{self.field}: " if self.field else ""
        text = f"{where}: {field}{self.message}" if where else f"{field}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def __repr__(self) -> str:
        return f"ConfigProblem({str(self)!r})"


class PluginError(RoboframeError):
    """A plugin is broken, duplicated, unknown or misbehaving."""


class GatewayError(RoboframeError):
    """An order gateway failed."""


class StrategyError(RoboframeError):
    """A strategy raised while handling an event; says which event.

    ``event`` is that event when the strategy itself raised; ``seq`` its
    sequence number in the run, set by whatever fed it (the loop, a replay).
    """

    event: object = None
    seq: int | None = None


class JournalError(RoboframeError):
    """A journal cannot be written or read."""
