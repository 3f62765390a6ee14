#!/usr/bin/env bash
# Builds the test guest: Debian's stock kernel (linux-image-amd64), the virtio
# and ext4 modules it needs, and busybox-static in an initramfs whose /init
# (scripts/guest/init) runs the checks named on the kernel command line.
#
# Packages are fetched with `apt-get download` into the cache (no root needed)
# and reused; when apt cannot fetch them the installed /boot kernel, its
# /lib/modules and /bin/busybox are used instead.
#
# Usage: scripts/guest/build.sh [CACHE_DIR]     (default: .cache/guest)
# Prints the kernel and initramfs paths as its last two lines.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${1:-$repo/.cache/guest}
mkdir -p "$cache/debs"
say() { echo "guest: $*" >&2; }

# ext4 asks the crypto API for crc32c at mount time, a dependency modules.dep does not list.
modules=(virtio_blk virtio_pci virtio_mmio ext4 crc32c_generic)

# The kernel version linux-image-amd64 points at, installed or not.
kernel_pkg=$( (dpkg-query -W -f='${Depends}' linux-image-amd64 2>/dev/null || apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}') | grep -o 'linux-image-[0-9][^ ,]*' | head -n1)
[ -n "$kernel_pkg" ] || { say "cannot tell which kernel linux-image-amd64 is: install it (bash scripts/setup.sh)"; exit 1; }
version=${kernel_pkg#linux-image-}

fetch() { # package -> path of its .deb in the cache, or nothing
  local pkg=$1 deb
  deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
  if [ -z "$deb" ]; then
    say "downloading $pkg"
    (cd "$cache/debs" && apt-get download -q "$pkg" >&2) || { say "apt-get download $pkg failed; using the installed files"; return 0; }
    deb=$(ls "$cache/debs/${pkg}_"*.deb | head -n1)
  fi
  echo "$deb"
}

root="$cache/root-$version"
if [ ! -d "$root" ]; then
  mkdir -p "$root.tmp"
  kernel_deb=$(fetch "$kernel_pkg")
  busybox_deb=$(fetch busybox-static)
  if [ -n "$kernel_deb" ]; then
    say "unpacking $(basename "$kernel_deb")"
    dpkg-deb -x "$kernel_deb" "$root.tmp"
  else
    [ -f "/boot/vmlinuz-$version" ] || { say "no /boot/vmlinuz-$version either: install $kernel_pkg"; exit 1; }
    mkdir -p "$root.tmp/boot" "$root.tmp/lib/modules"
    cp "/boot/vmlinuz-$version" "$root.tmp/boot/"
    cp -a "/lib/modules/$version" "$root.tmp/lib/modules/"
  fi
  if [ -n "$busybox_deb" ]; then
    dpkg-deb -x "$busybox_deb" "$root.tmp"
  else
    mkdir -p "$root.tmp/bin"
    cp "$(command -v busybox)" "$root.tmp/bin/busybox"
  fi
  rm -rf "$root" && mv "$root.tmp" "$root"
fi

moddir=$(ls -d "$root"/lib/modules/"$version" "$root"/usr/lib/modules/"$version" 2>/dev/null | head -n1 || true)
[ -n "$moddir" ] || { say "modules for $version missing in $root"; exit 1; }
if [ ! -f "$moddir/modules.dep" ]; then
  # The package leaves modules.dep to depmod at install time; generate it for the unpacked tree.
  say "generating modules.dep"
  if command -v depmod >/dev/null; then depmod -b "$root" "$version"
  else "$root/bin/busybox" depmod -b "$root" "$version"; fi
fi

# Resolve dependencies from modules.dep, dependencies first, each module once.
declare -A seen=()
order=()
add_module() {
  local name=$1 path deps dep
  path=$(awk -F: -v n="/${name}.ko" 'index($1, n) && substr($1, length($1) - length(n) + 1) == n {print $1; exit}' "$moddir/modules.dep")
  if [ -z "$path" ]; then
    path=$(awk -F: -v n="/${name//_/-}.ko" 'index($1, n) && substr($1, length($1) - length(n) + 1) == n {print $1; exit}' "$moddir/modules.dep")
  fi
  [ -n "$path" ] || { say "module $name not found in modules.dep (built in?)"; return 0; }
  [ -z "${seen[$path]:-}" ] || return 0
  seen[$path]=1
  deps=$(awk -F: -v p="$path" '$1 == p {print $2; exit}' "$moddir/modules.dep")
  for dep in $deps; do
    dep=$(basename "$dep"); dep=${dep%%.ko*}
    add_module "$dep"
  done
  order+=("$path")
}
for m in "${modules[@]}"; do add_module "$m"; done

out="$cache/$version"
mkdir -p "$out"
stamp=$( { sha256sum "$here/init" "$here/build.sh"; printf '%s\n' "${order[@]}"; } | sha256sum | cut -c1-16)
if [ -f "$out/initramfs.cpio.gz" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
  say "initramfs up to date"
else
  say "building initramfs with ${#order[@]} modules"
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage"/{bin,dev,proc,sys,tmp,mnt,lib/modules}
  cp "$root/bin/busybox" "$stage/bin/busybox"
  cp "$here/init" "$stage/init"
  chmod 755 "$stage/init" "$stage/bin/busybox"
  : > "$stage/lib/modules/load-order"
  for path in "${order[@]}"; do
    file=$(basename "$path")
    case "$file" in
      *.ko.xz) xz -dc "$moddir/$path" > "$stage/lib/modules/${file%.xz}"; file=${file%.xz} ;;
      *.ko.zst) zstd -qdc "$moddir/$path" > "$stage/lib/modules/${file%.zst}"; file=${file%.zst} ;;
      *.ko.gz) gzip -dc "$moddir/$path" > "$stage/lib/modules/${file%.gz}"; file=${file%.gz} ;;
      *) cp "$moddir/$path" "$stage/lib/modules/$file" ;;
    esac
    echo "$file" >> "$stage/lib/modules/load-order"
  done
  (cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) > "$out/initramfs.cpio.gz.tmp"
  mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
  cp "$(ls "$root"/boot/vmlinuz-* | head -n1)" "$out/vmlinuz"
  echo "$stamp" > "$out/stamp"
  say "built $out/initramfs.cpio.gz"
fi
echo "$out/vmlinuz"
echo "$out/initramfs.cpio.gz"
