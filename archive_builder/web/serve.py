"""Starting the web app: the safety checks on the address, the token, then uvicorn."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchiveError, ExitCode


class ServeRefused(ArchiveError):
    """The server would be reachable from the network without a login token."""

    exit_code = ExitCode.input_unusable
    kind = "无法启动服务"


@dataclass(frozen=True)
class ServeOptions:
    data: Path
    out: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8421
    open_browser: bool = False
    token: str | None = None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_options(options: ServeOptions) -> str | None:
    """Return the login token to require (None on loopback without one); refuse unsafe setups."""
    token = options.token
    if token == "auto":
        token = secrets.token_urlsafe(18)
    if token is not None and len(token) < 8:
        raise ServeRefused("登录令牌太短（至少 8 个字符）", hint="用 --token auto 自动生成一个足够长的令牌")
    if not is_loopback(options.host) and token is None and not _has_accounts(options):
        raise ServeRefused(
            f"监听地址 {options.host} 不是本机地址：局域网中的任何人都能打开档案，必须设置登录令牌",
            hint=f"加上 --token auto（自动生成令牌并显示登录地址），或 --token 您的令牌；"
            f"只在本机使用时去掉 --host（默认 127.0.0.1）。例如 archive-builder serve {options.data} "
            f"--host {options.host} --token auto",
        )
    return token


def _has_accounts(options: ServeOptions) -> bool:
    """Whether the output folder has accounts (then each person logs in with their own)."""
    from ..archive.outdir import configured_output
    from .accounts import load

    try:
        return bool(load(options.out or configured_output(options.data)))
    except ArchiveError:
        return False


def allowed_hosts(host: str, token: str | None) -> tuple[str, ...] | None:
    """The Host header names accepted: the loopback names (and the given host); any with a token."""
    if token is not None:
        return None  # reached by whatever name the office network gives this PC; the token guards it
    return tuple(dict.fromkeys(("127.0.0.1", "localhost", "[::1]", host.lower() if ":" not in host else f"[{host}]")))


def _shown_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "本机IP地址"
    return f"[{host}]" if ":" in host else host


def run(options: ServeOptions, started: Callable[[list[str]], object]) -> Iterator[str]:
    """Check, build the app, print the address (through ``started``) and serve until Ctrl+C."""
    token = check_options(options)
    import uvicorn

    from .app import create_app

    # with accounts every request needs a login, as with a token: any Host name may reach it
    hosts = None if _has_accounts(options) else allowed_hosts(options.host, token)
    app = create_app(options.data, options.out, token=token, preload=True, allowed_hosts=hosts)
    base = f"http://{_shown_host(options.host)}:{options.port}/"
    url = f"{base}login?token={token}" if token else base
    lines = [f"档案服务已启动：{url}"]
    if token:
        lines.append("请妥善保管此登录地址（只显示这一次）；在其他电脑的浏览器中打开它即可登录。")
    lines.append("按 Ctrl+C 停止服务。")

    config = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    if options.open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    started(lines)
    try:
        server.run()
    except OSError as exc:
        from ..errors import os_reason

        raise ServeRefused(f"无法在 {options.host}:{options.port} 上启动：{os_reason(exc)}",
                           hint="端口可能已被占用：用 --port 换一个端口") from exc
    yield "服务已停止。"
