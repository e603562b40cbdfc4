"""Exit codes and the error hierarchy.

The core raises these; only ``cli.py`` turns them into a message and an exit code.
Every ``message`` is written for the clerk (Chinese) and says what, where and how to fix.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, shared by every command."""

    ok = 0
    #: validation found errors (or warnings under --strict); ``diff`` found differences
    problems = 1
    #: the input itself is unusable (no archive.toml, unreadable folder, bad arguments)
    input_unusable = 2
    #: a build finished but some households could not be produced
    partial = 3
    #: the output location cannot be used (not writable, locked by another build)
    output_unusable = 4
    #: a required external program or font is missing
    missing_dependency = 5
    #: a bug: something we did not expect
    internal = 70
    interrupted = 130


class ArchiveError(Exception):
    """Base of every error the core raises on purpose."""

    exit_code: ExitCode = ExitCode.internal
    #: short Chinese name shown before the message: ``<kind>：<message>``
    kind: str = "错误"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n提示：{self.hint}"
        return self.message


class DataDirError(ArchiveError):
    """The data directory cannot be used at all."""

    exit_code = ExitCode.input_unusable
    kind = "数据目录错误"


class ConfigError(ArchiveError):
    """archive.toml / village.toml is present but unusable."""

    exit_code = ExitCode.input_unusable
    kind = "配置错误"


class HouseholdNotFoundError(ArchiveError):
    """A 户编号 given on the command line is not in the data directory."""

    exit_code = ExitCode.input_unusable
    kind = "找不到该户"


class ValidationFailed(ArchiveError):
    """A record has errors; the problems are attached for the reporter."""

    exit_code = ExitCode.problems
    kind = "数据有误"

    def __init__(self, message: str, problems: list, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems


class TemplateError(ArchiveError):
    """A template is missing, has a syntax error or produced invalid markup."""

    exit_code = ExitCode.input_unusable
    kind = "模板错误"


class FontError(ArchiveError):
    """No usable CJK font could be found."""

    exit_code = ExitCode.missing_dependency
    kind = "字体缺失"


class RenderError(ArchiveError):
    """Rendering one packet failed."""

    exit_code = ExitCode.internal
    kind = "生成失败"


class OutputError(ArchiveError):
    """The output directory cannot be written or is locked."""

    exit_code = ExitCode.output_unusable
    kind = "输出目录错误"


class ExternalToolError(ArchiveError):
    """A required external program (e.g. LibreOffice) is missing or failed."""

    exit_code = ExitCode.missing_dependency
    kind = "缺少外部程序"


class StoreError(ArchiveError):
    """The version store is damaged or a requested version does not exist."""

    exit_code = ExitCode.input_unusable
    kind = "版本库错误"
