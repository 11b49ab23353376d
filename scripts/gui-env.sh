#!/usr/bin/env bash
# What the kiosk's window needs on a fresh Debian machine, and a virtual screen to show it on.
#
#   scripts/gui-env.sh install     install the Debian packages that are missing: Xvfb, a window
#                                  manager, Mesa (OpenGL and Vulkan in software, for the window
#                                  and for the snapshot tests), xdotool and ImageMagick (the
#                                  window test drives the kiosk and takes screenshots), Chromium
#                                  and a CJK font (cardctl's HTML report, screenshotted headless)
#   scripts/gui-env.sh runtime-dir print a private XDG_RUNTIME_DIR (created 0700) for sessions
#                                  without a login manager
set -euo pipefail

PACKAGES=(
    xvfb
    matchbox-window-manager
    xdotool
    imagemagick
    x11-utils
    libgl1-mesa-dri
    libegl1
    libvulkan1
    mesa-vulkan-drivers
    libxkbcommon-x11-0
    poppler-utils
    chromium
    fonts-noto-cjk
)

die() {
    echo "gui-env: $*" >&2
    exit 1
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $*"
    fi
}

cmd_install() {
    local missing=() pkg state
    for pkg in "${PACKAGES[@]}"; do
        state="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
        if [ "$state" != installed ]; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "gui-env: all packages installed"
        return 0
    fi
    echo "gui-env: installing: ${missing[*]}" >&2
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

cmd_runtime_dir() {
    local dir="${TMPDIR:-/tmp}/sscard-xdg-$(id -u)"
    mkdir -p "$dir"
    chmod 700 "$dir"
    echo "$dir"
}

case "${1:-}" in
    install) cmd_install ;;
    runtime-dir) cmd_runtime_dir ;;
    *)
        sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
