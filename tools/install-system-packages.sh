#!/bin/sh
# Install the system packages archive-builder needs (Debian/Ubuntu); elsewhere, say what to do.
#   sh tools/install-system-packages.sh          fonts for rendering (CJK + rare-character fallbacks)
#   sh tools/install-system-packages.sh --test   also what the tests use (poppler-utils, qpdf, LibreOffice, Chromium)
set -eu
packages="fonts-arphic-uming fonts-arphic-ukai fonts-wqy-zenhei fonts-babelstone-han fonts-hanazono fonts-dejavu-core"
if [ "${1:-}" = "--test" ]; then
  packages="$packages poppler-utils qpdf libreoffice-writer-nogui chromium"
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "未找到 apt-get：请自行安装 TrueType 中文字体（Windows 自带宋体/仿宋/黑体/楷体即可）；测试还需要 poppler 和 LibreOffice。" >&2
  exit 0
fi
missing=""
for p in $packages; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then run=""; elif command -v sudo >/dev/null 2>&1; then run="sudo"; else
  echo "需要管理员权限安装：$missing" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$run apt-get update -qq
# shellcheck disable=SC2086
$run apt-get install -y -qq --no-install-recommends $missing >/dev/null
