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
    #: the reader of the output went away (``| head``): 128 + SIGPIPE, as a shell reports a tool it ended
    broken_pipe = 141


#: errno → what the clerk reads (the system's own text is English on most Linux machines)
_OS_REASONS = {
    "ENOENT": "文件或文件夹不存在",
    "EACCES": "没有访问权限",
    "EPERM": "没有访问权限",
    "EISDIR": "这是一个文件夹，不是文件",
    "ENOTDIR": "路径中有一段不是文件夹",
    "ENOSPC": "磁盘空间不足",
    "EDQUOT": "磁盘配额已用完",
    "EROFS": "磁盘或文件夹是只读的",
    "ENAMETOOLONG": "文件名或路径过长",
    "EMFILE": "同时打开的文件过多",
    "EIO": "读写出错（磁盘、U 盘或网络故障）",
    "EBUSY": "文件正被占用",
    "EEXIST": "文件已存在",
    "EINVAL": "文件名含有系统不允许的字符",
}
#: Windows error codes with no errno of their own
_WINDOWS_REASONS = {32: "文件正被其他程序使用", 33: "文件的一部分被其他程序锁定", 123: "文件名含有系统不允许的字符"}


def os_reason(exc: BaseException) -> str:
    """Why an operating-system call failed, in Chinese when the error is a common one."""
    import errno as errno_codes

    winerror = getattr(exc, "winerror", None)
    if winerror in _WINDOWS_REASONS:
        return _WINDOWS_REASONS[winerror]
    code = getattr(exc, "errno", None)
    name = errno_codes.errorcode.get(code) if isinstance(code, int) else None
    if name in _OS_REASONS:
        return _OS_REASONS[name]
    return str(getattr(exc, "strerror", None) or exc)


def quiet_library_logs() -> None:
    """Keep the libraries' own log warnings (pypdf's "EOF marker not found" for a damaged
    evidence PDF, in English) off the clerk's screen: every problem we find is reported in
    Chinese by the command itself. Python prints a warning nobody handles to stderr; a handler
    on the root logger that drops it stops that. A root logger already set up is left alone.
    """
    import logging

    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


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


class WorkerLostError(ArchiveError):
    """A worker process of a build ended without a result (killed, out of memory)."""

    exit_code = ExitCode.interrupted
    kind = "生成中断"


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


class VersionNotFoundError(StoreError):
    """A version number the household does not have (the store itself is fine)."""

    kind = "找不到版本"


class ArgumentError(ArchiveError):
    """A core function was called with arguments that cannot work together."""

    exit_code = ExitCode.input_unusable
    kind = "参数错误"


class NoticeError(ArchiveError):
    """A public notice (公示/公告) cannot be made as asked: period, households, template."""

    exit_code = ExitCode.input_unusable
    kind = "公示无法生成"


class PeriodTooShortError(NoticeError):
    """The notice period is shorter than the rule of its kind allows."""

    kind = "公示期不足"


#: free bytes below which an ambiguous write failure (SQLite's "disk I/O error") is a full disk
_NEARLY_FULL = 1 << 20


def disk_full(exc: BaseException, folder: object = None) -> bool:
    """True if ``exc`` (or what caused it) is a full disk or an exhausted quota.

    ``OSError`` ENOSPC/EDQUOT and SQLite's SQLITE_FULL always are; SQLite's plain "disk I/O
    error" is when ``folder``'s disk has (almost) no free space left.
    """
    import errno
    import shutil
    import sqlite3

    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        seen += 1
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            return True
        if isinstance(current, sqlite3.Error):
            if getattr(current, "sqlite_errorcode", None) == 13 or "disk is full" in str(current):
                return True
            if "disk I/O error" in str(current) and folder is not None:
                try:
                    return shutil.disk_usage(str(folder)).free < _NEARLY_FULL
                except OSError:
                    return False
        current = current.__cause__ or current.__context__
    return False


def disk_full_error(folder: object) -> OutputError:
    """The output-folder error (exit 4) for a full disk under ``folder``."""
    return OutputError(
        f"磁盘空间不足：输出文件夹 {folder} 所在的磁盘已满，本次没有完成；之前的输出文件保持不变",
        hint="请清理该磁盘的空间（或用 -o 换到空间充足的文件夹）后重新运行",
    )
