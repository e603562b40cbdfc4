"""The machinery of the command line: Chinese help, the command group that is the program's
one error boundary, and the output streams.

``ArchiveGroup.invoke`` turns every ``ArchiveError`` into ``类型：说明`` (and 提示) on stderr
and its exit code; a full disk, a closed pipe and Ctrl-C get their own message and code;
anything else is an internal error (exit 70) with a request to report it. ``cli`` defines
the commands on top of it.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .errors import ArchiveError, ExitCode, OutputError, disk_full, disk_full_error
from .textmatch import edit_distance


@dataclass(frozen=True)
class Options:
    """Global options, available to every command through ``@click.pass_obj``."""

    verbose: int = 0
    quiet: bool = False


# --- Chinese help ----------------------------------------------------------------------------


def _closest_options(typed: str, known: list[str]) -> list[str]:
    """The options a mistyped one most likely meant: the fewest edits away, and few at that
    (click's own guess compares with the dashes, so ``--forse`` also "resembled" ``--jobs``)."""
    word = typed.lstrip("-")
    limit = max(1, len(word) // 3) + 1
    scored = [(edit_distance(word, k.lstrip("-"), limit), k) for k in known if k.startswith("--")]
    best = min((d for d, _ in scored), default=limit)
    return [k for d, k in scored if d == best < limit]


class _ChineseHelp:
    """Chinese headings and help-option text for click's help pages."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)  # type: ignore[misc,no-any-return]
        except click.NoSuchOption as exc:
            known = [o for p in self.get_params(ctx) if isinstance(p, click.Option)  # type: ignore[attr-defined]
                     for o in (*p.opts, *p.secondary_opts)]
            raise click.NoSuchOption(exc.option_name, possibilities=_closest_options(exc.option_name, known),
                                     ctx=exc.ctx) from None

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.help = "显示本帮助并退出"
        return option  # type: ignore[no-any-return]

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        pieces = self.collect_usage_pieces(ctx)  # type: ignore[attr-defined]
        formatter.write_usage(ctx.command_path, " ".join(pieces), prefix="用法：")

    def format_options(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        params = self.get_params(ctx)  # type: ignore[attr-defined]
        arguments = [(p.make_metavar(ctx), _ARGUMENTS.get(p.name or "", ("", ""))[1])
                     for p in params if isinstance(p, click.Argument)]
        if arguments:
            with formatter.section("参数"):
                formatter.write_dl(arguments)
        records = [r for p in params if not isinstance(p, click.Argument) and (r := p.get_help_record(ctx))]
        if records:
            with formatter.section("选项"):
                formatter.write_dl(records)
        if isinstance(self, click.Group):
            self._format_commands(ctx, formatter)

    def _format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        assert isinstance(self, click.Group)
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=60)))
        if rows:
            with formatter.section("命令"):
                formatter.write_dl(rows)


#: metavars of option values by click type name (click would print TEXT, INTEGER RANGE …)
_METAVARS = {"text": "文本", "integer": "整数", "integer range": "整数", "float": "数字", "float range": "数字",
             "path": "路径", "filename": "文件", "file": "文件", "boolean": "是/否"}


#: placeholders of option values by parameter name (before the type's, which say less)
_OPTION_METAVARS = {"out": "输出目录", "store_dir": "输出目录", "data": "数据目录", "report": "报告文件",
                    "image": "图片文件", "villages": "村", "formats": "格式", "template_set": "模板集"}

#: arguments by parameter name: (placeholder, what to give)
_ARGUMENTS = {
    "data": ("数据目录", "含 archive.toml 的数据目录（格式见 archive-builder help 数据格式）"),
    "household_id": ("户编号", "16 位户编号，如 4116211052010001"),
    "first": ("户编号|旧.pdf", "要比较的户编号（配合 -o），或旧的 PDF 文件"),
    "versions": ("版本", "户编号之后：要比较的版本号（0–2 个）；旧.pdf 之后：新的 PDF 文件"),
    "text": ("二维码文字", "扫描封面二维码得到的文字，如 AB1|4116211052010001|v1|…"),
    "file": ("表格文件", "要导入的 .xlsx、.xls 或 .csv 表格"),
    "topic": ("主题", "要看的说明：数据格式、模板"),
    "name": ("账号名", "登录网页服务时用的账号名，如 张三"),
}


def _argument_metavar(param: click.Argument) -> str:
    name = _ARGUMENTS.get(param.name or "", (str(param.name),))[0]
    if not param.required:
        name = f"[{name}]"
    return name + ("..." if param.nargs != 1 else "")


class ArchiveCommand(_ChineseHelp, click.Command):
    """A command with Chinese help: Chinese placeholders for every argument and option value."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", "[选项]")
        super().__init__(*args, **kwargs)
        for param in self.params:
            if isinstance(param, click.Argument) and param.metavar is None:
                param.metavar = _argument_metavar(param)
            elif isinstance(param, click.Option) and param.metavar is None and not param.is_flag:
                param.metavar = _OPTION_METAVARS.get(param.name or "") or _METAVARS.get(param.type.name)


class ArchiveGroup(_ChineseHelp, click.Group):
    """The command group; its ``invoke`` is the single error boundary of the program."""

    command_class = ArchiveCommand
    group_class = type  # subgroups (``store``) are ArchiveGroups too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", "[选项]")
        kwargs.setdefault("subcommand_metavar", "命令 [参数]...")
        super().__init__(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
        except (
            click.exceptions.ClickException,
            click.exceptions.Exit,
            click.exceptions.Abort,
        ):
            raise
        except ArchiveError as exc:
            if not isinstance(exc, OutputError) and disk_full(exc):
                exc = disk_full_error(_full_folder(exc))
            try:
                _print_error(ctx, exc)
            except BrokenPipeError:  # nobody reads the message: the exit code still says what failed
                _silence_closed_pipe()
            ctx.exit(int(exc.exit_code))
        except BrokenPipeError:
            # whoever read the output stopped reading (``| head -1``): nothing is wrong, and
            # nothing more can be said there; end quietly as tools ended by SIGPIPE do
            _silence_closed_pipe()
            ctx.exit(int(ExitCode.broken_pipe))
        except KeyboardInterrupt:
            click.echo("已中断", err=True)
            ctx.exit(int(ExitCode.interrupted))
        except Exception as exc:  # noqa: BLE001 - the boundary: anything else is a bug
            if disk_full(exc):  # not a bug: the disk is full (any command that writes)
                error = disk_full_error(_full_folder(exc))
                _print_error(ctx, error)
                ctx.exit(int(error.exit_code))
            _print_internal(ctx, exc)
            ctx.exit(int(ExitCode.internal))
        if isinstance(result, int) and result:
            ctx.exit(int(result))
        return result


def _full_folder(exc: BaseException) -> str:
    """The folder of the file a disk-full error was writing, when it says."""
    name = getattr(exc, "filename", None) or getattr(exc.__cause__, "filename", None)
    return str(Path(name).parent) if name else "（当前输出位置）"


def _verbose(ctx: click.Context) -> bool:
    opts = ctx.find_object(Options)
    return bool(opts and opts.verbose)


def _print_error(ctx: click.Context, exc: ArchiveError) -> None:
    if _verbose(ctx):
        click.echo(traceback.format_exc(), err=True)
    click.echo(f"{exc.kind}：{exc.message}", err=True)
    if exc.hint:
        click.echo(f"提示：{exc.hint}", err=True)


def _print_internal(ctx: click.Context, exc: Exception) -> None:
    if _verbose(ctx):
        click.echo(traceback.format_exc(), err=True)
    click.echo(f"内部错误：{type(exc).__name__}: {exc}", err=True)
    click.echo(
        "这是 archive-builder 的缺陷，不是您的数据问题。请报告：附上这段信息和加 -v 运行时的输出。",
        err=True,
    )


def _silence_closed_pipe() -> None:
    """Point stdout and stderr at the null device, so that flushing what is still buffered
    for a reader that has gone (at exit too) raises nothing more."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            try:
                os.dup2(devnull, stream.fileno())
            except (OSError, ValueError, AttributeError):  # not a real file (tests' CliRunner)
                pass
    finally:
        os.close(devnull)


def _tolerant_streams() -> None:
    # A Windows console or a pipe in GBK cannot encode every name (𠮷): never die on output.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (
            getattr(stream, "encoding", "") or ""
        ).lower() not in ("utf-8", "utf8"):
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):
                pass
