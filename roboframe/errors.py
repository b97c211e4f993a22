"""The exception hierarchy. Every error a user can cause is a RoboframeError."""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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


class EndpointInUse(ConfigError):
    """Another live process answers at the robot's control endpoint: the same
    robot still running (left by a supervisor killed without ``down``), or
    another robot with the same journal folder. ``roboframe run`` exits 4."""


class PluginError(RoboframeError):
    """A plugin is broken, duplicated, unknown or misbehaving."""


class GatewayError(RoboframeError):
    """An order gateway failed."""


class RunFailed(RoboframeError):
    """The feed or the order gateway broke the run: it ends as a crash does,
    its journal without a stop, so ``run --resume`` goes on with it."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(reason)
        self.what = what  # "feed" or "gateway"; "run": ended on request, to be resumed


class StrategyError(RoboframeError):
    """A strategy raised while handling an event; says which event.

    ``event`` is that event when the strategy itself raised; ``seq`` its
    sequence number in the run, set by whatever fed it (the loop, a replay).
    """

    event: object = None
    seq: int | None = None


class JournalError(RoboframeError):
    """A journal cannot be written or read."""


_PATHS = sysconfig.get_paths()
_STDLIB = str(Path(_PATHS["stdlib"]).resolve())
_SITE = tuple(str(Path(_PATHS[k]).resolve()) for k in ("purelib", "platlib"))


def _in_stdlib(filename: str) -> bool:
    path = str(Path(filename).resolve())
    return path.startswith(_STDLIB) and not path.startswith(_SITE)  # site-packages: plugins


def raised_at(exc: BaseException) -> str:
    """`` (file.py:12 in fn)``: where ``exc`` was raised -- the innermost frame
    outside the standard library (a plugin's own line, not json's decoder) --
    or "" when its traceback is gone."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        code = tb.tb_frame.f_code
        if found is None or not _in_stdlib(code.co_filename):
            found = (code.co_filename, tb.tb_lineno, code.co_name)
        tb = tb.tb_next
    if found is None:
        return ""
    return f" ({Path(found[0]).name}:{found[1]} in {found[2]})"


def described(exc: BaseException) -> str:
    """``exc`` as a log line says it: ours by their message, others by type,
    message and where they were raised."""
    if isinstance(exc, RoboframeError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}{raised_at(exc)}"


@contextmanager
def blamed(what: str, error: type[RoboframeError] = PluginError) -> Iterator[None]:
    """Run a plugin's code: an exception it raises that is not one of ours becomes
    ``error`` naming ``what`` (``"feed 'jsonl' (plugin acme)"``) and the line that
    raised, so a user sees whose bug it is instead of a traceback."""
    try:
        yield
    except RoboframeError:
        raise
    except Exception as exc:
        raise error(f"{what} raised {described(exc)}") from exc
