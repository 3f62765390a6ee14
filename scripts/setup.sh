#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build, test and demo virtio-ts:
# the Debian packages the guest tests and the demo use (QEMU, a stock kernel,
# busybox, pciutils, acpica-tools, strace for the syscall-level tests), pnpm at the version package.json pins, and
# the workspace's dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null; then
  echo "setup: Node.js is not installed; install Node.js 20.19 or newer (https://nodejs.org or Debian's nodejs package) and run this again" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "setup: Node.js $(node --version) is too old; virtio-ts needs 20.19 or newer" >&2
  exit 1
fi

debian_packages=(qemu-system-x86 qemu-utils busybox-static pciutils acpica-tools linux-image-amd64 cpio xz-utils kmod gzip strace)
missing=()
for pkg in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  echo "setup: installing pnpm $pnpm_version"
  npm install -g "pnpm@$pnpm_version" --silent
fi
pnpm install --frozen-lockfile
