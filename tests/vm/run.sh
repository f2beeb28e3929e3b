#!/usr/bin/env bash
# ktls-vm/run.sh - run one command inside a throwaway Debian bookworm VM whose
# kernel (Debian's linux-image-amd64, 6.1.x) has the `tls` module loaded, so
# kernel TLS (kTLS) can be exercised even when the host kernel lacks CONFIG_TLS.
#
#   run.sh [options] -- COMMAND [ARGS...]
#   run.sh --setup            # only prepare the cache (idempotent)
#
# See README.md next to this file.
#
# ferry's copy of the ktls-vm harness (shared/ktls-vm/run.sh beside the repository), carried in
# the repository so CI needs nothing outside it; tests/vm/README.md says how ferry uses it and
# what changed. build_rootfs, build_image and guest/* are kept byte-identical to the original, so
# both copies compute the same cache keys and can share one warm $KTLS_VM_CACHE without
# rebuilding each other's image.
set -euo pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${KTLS_VM_CACHE:-/var/cache/ktls-vm}
SUITE=${KTLS_VM_SUITE:-bookworm}
MIRROR=${KTLS_VM_MIRROR:-}
SECURITY_MIRROR=${KTLS_VM_SECURITY_MIRROR:-}
MEM=${KTLS_VM_MEM:-1024}
CPUS=${KTLS_VM_CPUS:-2}
ACCEL=${KTLS_VM_ACCEL:-auto}
TIMEOUT=${KTLS_VM_TIMEOUT:-900}
VERBOSE=${KTLS_VM_VERBOSE:-0}
EXTRA_PACKAGES=${KTLS_VM_EXTRA_PACKAGES:-}
KVM_PROBE_TIMEOUT=${KTLS_VM_KVM_PROBE_TIMEOUT:-30}

# Guest packages (installed with --no-install-recommends on top of minbase).
PACKAGES="linux-image-amd64 busybox-static kmod iproute2 procps openssl curl
ca-certificates python3 strace socat netcat-openbsd $EXTRA_PACKAGES"
# Modules the initramfs loads (with their dependencies): root disk, output
# ports, 9p shares and tls itself.
INITRD_MODULES="virtio_pci virtio_blk ext4 crc32c_generic virtio_console 9pnet_virtio 9p tls"
# Big module trees that a loopback-only test VM never needs.
PRUNE_MODULE_DIRS="drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet
drivers/infiniband drivers/staging drivers/bluetooth drivers/iio drivers/isdn
drivers/input drivers/hid drivers/usb drivers/scsi drivers/ata drivers/mtd sound
net/bluetooth net/wireless net/mac80211"

msg() { echo "ktls-vm: $*" >&2; }
die() { msg "error: $*"; exit 125; }

usage() {
	cat <<'EOF'
usage: run.sh [options] -- COMMAND [ARGS...]
       run.sh --setup [--rebuild]

Runs COMMAND as root inside a Debian bookworm VM (Debian kernel 6.1, `tls`
module loaded, loopback only) and exits with COMMAND's exit status.
Guest stdout/stderr go to this process's stdout/stderr.

options:
  --share HOSTDIR[:GUESTDIR[:ro]]  share HOSTDIR into the guest (virtio-9p) at
                                   GUESTDIR (default: the same absolute path);
                                   repeatable
  --cwd DIR        guest working directory (default: $PWD if it lies inside a
                   share, else the first share, else /root)
  --env NAME=VAL   set an environment variable for COMMAND (repeatable);
  --env NAME       pass the host's value of NAME
  --timeout SECS   kill the VM after SECS (default $KTLS_VM_TIMEOUT or 900;
                   0 = none); exit status 124
  --mem MIB        guest memory (default $KTLS_VM_MEM or 1024)
  --cpus N         guest CPUs (default $KTLS_VM_CPUS or 2)
  --accel MODE     kvm | tcg | auto (default $KTLS_VM_ACCEL or auto: use KVM
                   if a cached probe boot succeeded, else TCG)
  --verbose        copy the guest kernel console to stderr
  --setup          only prepare/verify the cache, then exit
  --rebuild        with --setup (or before a run): rebuild rootfs and image

Exit status: COMMAND's status; 124 on timeout; 125 if the VM failed.
Cache: $KTLS_VM_CACHE (default /var/cache/ktls-vm).
EOF
}

# --------------------------------------------------------------------------
# setup
# --------------------------------------------------------------------------

detect_mirrors() {
	local files=() f uris
	[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
	for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	uris=$( (for f in "${files[@]}"; do
		sed -n -e 's/^[[:space:]]*URIs:[[:space:]]*//p' \
			-e 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' "$f"
	done) | tr ' ' '\n' | grep -E '^https?://' || true)
	if [ -z "$MIRROR" ]; then
		MIRROR=$(echo "$uris" | grep -E '/debian/?$' | head -n1 || true)
		MIRROR=${MIRROR:-http://deb.debian.org/debian}
	fi
	if [ -z "$SECURITY_MIRROR" ]; then
		SECURITY_MIRROR=$(echo "$uris" | grep -E '/debian-security/?$' | head -n1 || true)
	fi
	MIRROR=${MIRROR%/}
	SECURITY_MIRROR=${SECURITY_MIRROR%/}
}

# apt-get with an extra, temporary package list (suite $1, e.g.
# bookworm-backports) next to the system's, without touching /etc/apt or
# /var/lib/apt/lists.
apt_with_suite() {
	local suite=$1 tmp
	shift
	tmp=$CACHE/apt-extra
	mkdir -p "$tmp/lists/partial"
	{
		echo "deb $MIRROR $SUITE main"
		echo "deb $MIRROR $SUITE-updates main"
		[ -n "$SECURITY_MIRROR" ] && echo "deb $SECURITY_MIRROR $SUITE-security main"
		echo "deb $MIRROR $suite main"
	} >"$tmp/sources.list"
	local opts=(-o "Dir::Etc::sourcelist=$tmp/sources.list" -o Dir::Etc::sourceparts=-
		-o "Dir::State::lists=$tmp/lists")
	apt-get "${opts[@]}" update -q >&2 && apt-get "${opts[@]}" "$@" >&2
}

ensure_host_tools() {
	local need=() c qv
	command -v debootstrap >/dev/null || need+=(debootstrap)
	command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
	command -v cpio >/dev/null || need+=(cpio)
	command -v flock >/dev/null || need+=(util-linux)
	[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)
	if ! command -v qemu-system-x86_64 >/dev/null; then
		[ "$(id -u)" = 0 ] || die "qemu-system-x86 is missing and not root"
		export DEBIAN_FRONTEND=noninteractive
		qv=$(dpkg-query -W -f '${db:Status-Abbrev} ${Version}' qemu-utils 2>/dev/null |
			awk '$1 == "ii" { print $2 }' || true)
		if [ -n "$qv" ]; then
			# qemu-system-x86 from another release would make apt remove the
			# installed qemu-utils (qemu-img); install the same version.
			msg "installing host package qemu-system-x86 $qv (matching qemu-utils)"
			if [[ "$qv" == *bpo* ]]; then
				apt_with_suite "$SUITE-backports" install -y -q --no-install-recommends \
					"qemu-system-x86=$qv" "qemu-system-common=$qv" "qemu-system-data=$qv" \
					-t "$SUITE-backports" || true
			else
				{ apt-get update -q && apt-get install -y -q --no-install-recommends "qemu-system-x86=$qv"; } >&2 || true
			fi
			if ! command -v qemu-system-x86_64 >/dev/null; then
				msg "falling back to $SUITE's qemu-system-x86 + qemu-utils"
				need+=(qemu-system-x86 qemu-utils)
			fi
		else
			need+=(qemu-system-x86)
		fi
	fi
	[ ${#need[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || die "missing host packages (${need[*]}) and not root"
	msg "installing host packages: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >&2 || true
	apt-get install -y -q --no-install-recommends "${need[@]}" >&2 ||
		die "apt-get install ${need[*]} failed"
	for c in qemu-system-x86_64 debootstrap mkfs.ext4 cpio flock; do
		command -v "$c" >/dev/null || die "$c still missing after install"
	done
}

hash_of() { sha256sum | cut -c1-16; }

rootfs_key() {
	{
		printf '%s\n' "$SUITE" "$MIRROR" "$SECURITY_MIRROR" $PACKAGES $PRUNE_MODULE_DIRS
		declare -f build_rootfs
	} | hash_of
}

image_key() {
	{
		cat "$CACHE/rootfs.stamp"
		echo "$INITRD_MODULES"
		cat "$SELF_DIR/guest/ktls-init" "$SELF_DIR/guest/initramfs-init"
		declare -f build_image
	} | hash_of
}

CHROOT_MOUNTS=()
umount_chroot() {
	local i
	for ((i = ${#CHROOT_MOUNTS[@]} - 1; i >= 0; i--)); do
		umount -l "${CHROOT_MOUNTS[$i]}" 2>/dev/null || true
	done
	CHROOT_MOUNTS=()
}

build_rootfs() {
	local dir=$CACHE/rootfs.tmp key
	key=$(rootfs_key)
	if [ -f "$CACHE/rootfs.stamp" ] && [ "$(cat "$CACHE/rootfs.stamp")" = "$key" ] && [ -d "$CACHE/rootfs" ]; then
		return 0
	fi
	[ "$(id -u)" = 0 ] || die "building the rootfs needs root"
	msg "building $SUITE rootfs from $MIRROR (one time, a few minutes)"
	# leftovers of an interrupted build: unmount first, never cross mounts
	grep -o " $dir/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf --one-file-system "$dir"
	debootstrap --variant=minbase --components=main "$SUITE" "$dir" "$MIRROR" \
		>"$CACHE/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }

	{
		echo "deb $MIRROR $SUITE main"
		echo "deb $MIRROR $SUITE-updates main"
		[ -n "$SECURITY_MIRROR" ] && echo "deb $SECURITY_MIRROR $SUITE-security main"
	} >"$dir/etc/apt/sources.list"
	# name resolution for apt inside the chroot (the host may resolve the
	# mirror through /etc/hosts)
	cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
	cp /etc/hosts "$dir/etc/hosts"
	printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
	chmod 755 "$dir/usr/sbin/policy-rc.d"

	trap umount_chroot EXIT
	mount -t proc proc "$dir/proc" && CHROOT_MOUNTS+=("$dir/proc")
	mount -t sysfs sysfs "$dir/sys" && CHROOT_MOUNTS+=("$dir/sys")
	# No initramfs-tools run: ktls-vm builds its own tiny initramfs.
	chroot "$dir" dpkg-divert --local --rename --add /usr/sbin/update-initramfs >/dev/null
	printf '#!/bin/sh\nexit 0\n' >"$dir/usr/sbin/update-initramfs"
	chmod 755 "$dir/usr/sbin/update-initramfs"
	# shellcheck disable=SC2086
	if ! chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 sh -c "
		set -e
		apt-get update -q
		apt-get -y -q -o Dpkg::Options::=--force-confold dist-upgrade
		apt-get -y -q -o Dpkg::Options::=--force-confold install --no-install-recommends $(echo $PACKAGES)
		apt-get clean
		rm -rf /var/lib/apt/lists/*
		" >"$CACHE/apt-chroot.log" 2>&1; then
		tail -n 30 "$CACHE/apt-chroot.log" >&2
		umount_chroot
		die "package installation in the rootfs failed (log: $CACHE/apt-chroot.log)"
	fi

	local kver
	kver=$(basename "$(ls -d "$dir"/lib/modules/*/ | sort -V | tail -n1)")
	local d
	for d in $PRUNE_MODULE_DIRS; do rm -rf "$dir/lib/modules/$kver/kernel/$d"; done
	chroot "$dir" depmod -a "$kver"

	# A throwaway test certificate (CN=localhost, SAN localhost/127.0.0.1).
	mkdir -p "$dir/etc/ktls-vm"
	chroot "$dir" openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-nodes -days 3650 -subj /CN=localhost \
		-addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
		-keyout /etc/ktls-vm/key.pem -out /etc/ktls-vm/cert.pem >/dev/null 2>&1 ||
		msg "warning: could not create test certificate"
	umount_chroot
	trap - EXIT

	echo ktls-vm >"$dir/etc/hostname"
	printf '127.0.0.1\tlocalhost ktls-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$dir/etc/hosts"
	: >"$dir/etc/resolv.conf"
	echo "/dev/vda / ext4 rw,noatime 0 0" >"$dir/etc/fstab"
	rm -f "$dir/usr/sbin/policy-rc.d"

	rm -rf "$CACHE/rootfs"
	mv "$dir" "$CACHE/rootfs"
	echo "$key" >"$CACHE/rootfs.stamp"
	rm -f "$CACHE/image.stamp"
}

build_image() {
	local key root=$CACHE/rootfs kver initrd_dir
	key=$(image_key)
	if [ -f "$CACHE/image.stamp" ] && [ "$(cat "$CACHE/image.stamp")" = "$key" ] &&
		[ -f "$CACHE/rootfs.ext4" ] && [ -f "$CACHE/boot-kernel" ] && [ -f "$CACHE/initrd.cpio" ]; then
		return 0
	fi
	msg "building boot image"
	rm -f "$CACHE/image.stamp" "$CACHE/accel"
	kver=$(basename "$(ls -d "$root"/lib/modules/*/ | sort -V | tail -n1)")
	install -m 755 "$SELF_DIR/guest/ktls-init" "$root/sbin/ktls-init"
	# OpenSSL 3.0 has no -ktls flag: kTLS is switched on per SSL_CTX with the
	# SSL_CONF option "Options = KTLS"; OPENSSL_CONF=<this file> does that for
	# the openssl CLI and any program that loads the default config.
	mkdir -p "$root/etc/ktls-vm"
	cat >"$root/etc/ktls-vm/openssl-ktls.cnf" <<-'EOF'
		# Use with OPENSSL_CONF=/etc/ktls-vm/openssl-ktls.cnf
		openssl_conf = ktls_init
		[ktls_init]
		ssl_conf = ktls_ssl
		[ktls_ssl]
		system_default = ktls_system_default
		[ktls_system_default]
		Options = KTLS
	EOF

	# initramfs: static busybox + the modules listed in INITRD_MODULES
	initrd_dir=$(mktemp -d "$CACHE/initrd.XXXXXX")
	mkdir -p "$initrd_dir/bin" "$initrd_dir/lib/modules"
	cp "$root/bin/busybox" "$initrd_dir/bin/busybox"
	install -m 755 "$SELF_DIR/guest/initramfs-init" "$initrd_dir/init"
	# shellcheck disable=SC2086
	chroot "$root" modprobe -S "$kver" --show-depends -a $INITRD_MODULES |
		awk '$1 == "insmod" { print $2 }' | awk '!seen[$0]++' >"$initrd_dir/modules.full"
	[ -s "$initrd_dir/modules.full" ] || die "could not resolve initramfs modules"
	: >"$initrd_dir/modules.list"
	local m
	while read -r m; do
		cp "$root$m" "$initrd_dir/lib/modules/"
		echo "/lib/modules/$(basename "$m")" >>"$initrd_dir/modules.list"
	done <"$initrd_dir/modules.full"
	rm "$initrd_dir/modules.full"
	(cd "$initrd_dir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$CACHE/initrd.cpio.tmp"
	rm -rf "$initrd_dir"

	# Kernel: the bzImage, and its uncompressed ELF vmlinux.  QEMU boots the
	# latter through the PVH entry point, which skips the in-guest xz
	# decompression (about 4-5 s under TCG).
	cp "$root/boot/vmlinuz-$kver" "$CACHE/vmlinuz.tmp"
	chroot "$root" python3 -c '
import lzma, sys
d = open(sys.argv[1], "rb").read()
i = d.find(b"\xfd7zXZ\x00")
out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d[i:]) if i >= 0 else b""
if out[:4] != b"\x7fELF":
    sys.exit("no xz-compressed ELF payload found")
sys.stdout.buffer.write(out)' "/boot/vmlinuz-$kver" >"$CACHE/vmlinux.tmp" ||
		rm -f "$CACHE/vmlinux.tmp"

	# ext4 root image, populated directly from the tree (no loop mount)
	local used_mb size_mb
	used_mb=$(du -sm "$root" | cut -f1)
	size_mb=$((used_mb + used_mb / 4 + 1024))
	rm -f "$CACHE/rootfs.ext4.tmp"
	mkfs.ext4 -q -F -L ktls-root -O ^has_journal -E root_owner=0:0 -d "$root" \
		"$CACHE/rootfs.ext4.tmp" "${size_mb}M" >/dev/null || die "mkfs.ext4 failed"

	mv "$CACHE/initrd.cpio.tmp" "$CACHE/initrd.cpio"
	mv "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"
	rm -f "$CACHE/vmlinux"
	[ -f "$CACHE/vmlinux.tmp" ] && mv "$CACHE/vmlinux.tmp" "$CACHE/vmlinux"
	mv "$CACHE/rootfs.ext4.tmp" "$CACHE/rootfs.ext4"
	echo "$kver" >"$CACHE/kernel-release"

	# Smoke-boot kernel + initramfs under TCG (the initramfs powers off at
	# once in probe mode) and keep the fastest kernel image that works.
	local k
	rm -f "$CACHE/boot-kernel"
	for k in vmlinux vmlinuz; do
		[ -f "$CACHE/$k" ] || continue
		if probe_boot tcg "$CACHE/$k" 120 >/dev/null; then
			echo "$k" >"$CACHE/boot-kernel"
			break
		fi
		msg "warning: test boot of $k under TCG failed"
	done
	[ -f "$CACHE/boot-kernel" ] || die "the kernel does not boot under TCG (see $CACHE/probe.log)"
	echo "$key" >"$CACHE/image.stamp"
}

# probe_boot ACCEL KERNEL TIMEOUT: boot KERNEL + initramfs in probe mode (the
# initramfs prints a marker and powers off).  Prints qemu's messages; returns
# 0 if the marker was seen, 2 on timeout, 1 otherwise.
probe_boot() {
	local accel=$1 kernel=$2 limit=$3 cpu=max rc=0
	[ "$accel" = kvm ] && cpu=host
	(timeout -k 2 "$limit" qemu-system-x86_64 -machine "pc,accel=$accel" -cpu "$cpu" \
		-m 256 -smp 1 -nodefaults -no-user-config -display none -no-reboot \
		-serial "file:$CACHE/probe.log" -kernel "$kernel" -initrd "$CACHE/initrd.cpio" \
		-append "console=ttyS0 panic=-1 quiet cryptomgr.notests ktls_vm.probe=1"
		exit $?) 2>&1 </dev/null || rc=$?
	grep -q KTLS-VM-PROBE-OK "$CACHE/probe.log" 2>/dev/null && return 0
	{ [ "$rc" = 124 ] || [ "$rc" = 137 ]; } && return 2
	return 1
}

kvm_host_key() {
	echo "$(uname -r) $(stat -c '%t:%T' /dev/kvm 2>/dev/null || echo none) $(cat "$CACHE/image.stamp")"
}

# Decide once (cached, keyed on host kernel, /dev/kvm and image) whether KVM
# can boot the guest; otherwise TCG is used.
probe_kvm() {
	local host_key out rc=0 t0 verdict reason
	host_key=$(kvm_host_key)
	if [ -f "$CACHE/accel" ] && [ "$(sed -n 2p "$CACHE/accel")" = "$host_key" ]; then
		return 0
	fi
	if [ ! -e /dev/kvm ]; then
		verdict=tcg reason="/dev/kvm does not exist"
	elif ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
		verdict=tcg reason="/dev/kvm not accessible to uid $(id -u)"
	else
		msg "probing KVM (one time, up to ${KVM_PROBE_TIMEOUT}s)"
		t0=$(date +%s%N)
		out=$(probe_boot kvm "$CACHE/$(cat "$CACHE/boot-kernel")" "$KVM_PROBE_TIMEOUT") || rc=$?
		out=$(echo "$out" | grep -E '^qemu' | head -n 3 | tr '\n' ' ')
		case "$rc" in
		0) verdict=kvm reason="KVM probe boot ok in $((($(date +%s%N) - t0) / 1000000)) ms" ;;
		2) verdict=tcg reason="KVM probe boot did not finish within ${KVM_PROBE_TIMEOUT}s $out" ;;
		*) verdict=tcg reason="KVM probe boot failed: ${out:-no marker on the console}" ;;
		esac
	fi
	printf '%s\n%s\n%s\n' "$verdict" "$host_key" "$reason" >"$CACHE/accel"
}

do_setup() {
	local rebuild=$1
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.lock"
	flock 9
	detect_mirrors
	ensure_host_tools
	if [ "$rebuild" = 1 ]; then
		rm -f "$CACHE/rootfs.stamp" "$CACHE/image.stamp" "$CACHE/accel"
	fi
	build_rootfs
	build_image
	if [ "$ACCEL" = auto ]; then probe_kvm; fi
	flock -u 9
	exec 9>&-
}

cache_ready() {
	[ -f "$CACHE/rootfs.stamp" ] && [ -f "$CACHE/image.stamp" ] &&
		[ -f "$CACHE/rootfs.ext4" ] && [ -f "$CACHE/boot-kernel" ] && [ -f "$CACHE/initrd.cpio" ] &&
		command -v qemu-system-x86_64 >/dev/null || return 1
	detect_mirrors
	[ "$(cat "$CACHE/rootfs.stamp")" = "$(rootfs_key)" ] || return 1
	[ "$(cat "$CACHE/image.stamp")" = "$(image_key)" ] || return 1
	if [ "$ACCEL" = auto ]; then
		[ -f "$CACHE/accel" ] &&
			[ "$(sed -n 2p "$CACHE/accel")" = "$(kvm_host_key)" ] || return 1
	fi
	return 0
}

# --------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------

SHARES=() ENVS=() GUEST_CWD="" SETUP_ONLY=0 REBUILD=0
while [ $# -gt 0 ]; do
	case "$1" in
	--share) [ $# -ge 2 ] || die "--share needs an argument"; SHARES+=("$2"); shift 2 ;;
	--share=*) SHARES+=("${1#*=}"); shift ;;
	--env) [ $# -ge 2 ] || die "--env needs an argument"; ENVS+=("$2"); shift 2 ;;
	--env=*) ENVS+=("${1#*=}"); shift ;;
	--cwd) GUEST_CWD=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--cpus) CPUS=$2; shift 2 ;;
	--accel) ACCEL=$2; shift 2 ;;
	--verbose | -v) VERBOSE=1; shift ;;
	--setup) SETUP_ONLY=1; shift ;;
	--rebuild) REBUILD=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) break ;;
	esac
done
case "$ACCEL" in kvm | tcg | auto) ;; *) die "--accel must be kvm, tcg or auto" ;; esac

if [ "$SETUP_ONLY" = 1 ] || [ "$REBUILD" = 1 ] || ! cache_ready; then
	t_setup=$(date +%s)
	do_setup "$REBUILD"
	[ "$SETUP_ONLY" = 1 ] || msg "setup done in $(($(date +%s) - t_setup))s"
fi
if [ "$SETUP_ONLY" = 1 ]; then
	msg "cache ready in $CACHE (kernel $(cat "$CACHE/kernel-release"))"
	[ -f "$CACHE/accel" ] && msg "accelerator: $(sed -n 1p "$CACHE/accel") ($(sed -n 3p "$CACHE/accel"))"
	[ $# -eq 0 ] && exit 0
fi
[ $# -gt 0 ] || { usage >&2; exit 125; }

# pick the accelerator
if [ "$ACCEL" = auto ]; then
	ACCEL=$(sed -n 1p "$CACHE/accel")
	if [ "$ACCEL" = tcg ] && [ "${KTLS_VM_QUIET:-0}" != 1 ]; then
		msg "accel=tcg: KVM is unusable on this host (probe result in $CACHE/accel)"
	fi
fi
if [ "$ACCEL" = kvm ]; then
	QEMU_ACCEL=(-machine pc,accel=kvm -cpu host)
else
	QEMU_ACCEL=(-machine pc,accel=tcg -cpu max)
fi

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ktls-vm.XXXXXX")
CTL=$RUN_DIR/ctl
mkdir -p "$CTL"
QEMU_PID="" CAT_PIDS=()
cleanup() {
	local p
	[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true
	for p in "${CAT_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shares
SHARE_ARGS=()
: >"$CTL/shares"
i=0
SHARE_HOST=() SHARE_GUEST=()
for s in "${SHARES[@]}"; do
	IFS=: read -r host guest mode <<<"$s"
	[ -d "$host" ] || die "--share: $host is not a directory"
	host=$(cd "$host" && pwd -P)
	guest=${guest:-$host}
	mode=${mode:-rw}
	case "$guest" in /*) ;; *) die "--share: guest path must be absolute: $guest" ;; esac
	guest=$(realpath -m "$guest")
	case "$guest" in
	/ | /bin | /boot | /dev | /dev/* | /etc | /lib | /lib64 | /proc | /proc/* | /run | /run/* | \
		/sbin | /sys | /sys/* | /usr | /var)
		die "--share: refusing to mount over guest $guest (use HOSTDIR:GUESTDIR)" ;;
	esac
	case "$mode" in ro | rw) ;; *) die "--share: mode must be ro or rw" ;; esac
	ro=""
	[ "$mode" = ro ] && ro=",readonly=on"
	SHARE_ARGS+=(-virtfs "local,path=${host//,/,,},mount_tag=ktls$i,security_model=none,multidevs=remap,id=ktls$i$ro")
	printf 'ktls%d\t%s\t%s\n' "$i" "$guest" "$mode" >>"$CTL/shares"
	SHARE_HOST+=("$host")
	SHARE_GUEST+=("$guest")
	i=$((i + 1))
done

# working directory
if [ -z "$GUEST_CWD" ]; then
	GUEST_CWD=/root
	here=$(pwd -P)
	for ((j = 0; j < ${#SHARE_HOST[@]}; j++)); do
		h=${SHARE_HOST[$j]}
		if [ "$here" = "$h" ] || [[ "$here" == "$h"/* ]]; then
			GUEST_CWD=${SHARE_GUEST[$j]}${here#"$h"}
			break
		fi
	done
	if [ "$GUEST_CWD" = /root ] && [ ${#SHARE_GUEST[@]} -gt 0 ]; then
		GUEST_CWD=${SHARE_GUEST[0]}
	fi
fi

# the command script (bash-quoted; guest runs bash 5.2 as well)
{
	printf 'cd -- %q || exit 125\n' "$GUEST_CWD"
	for e in "${ENVS[@]}"; do
		if [[ "$e" == *=* ]]; then
			printf 'export %q\n' "$e"
		elif [ -n "${!e+x}" ]; then
			printf 'export %q\n' "$e=${!e}"
		fi
	done
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$CTL/cmd"

mkfifo "$RUN_DIR/out" "$RUN_DIR/err" "$RUN_DIR/con"
cat "$RUN_DIR/out" &
CAT_PIDS+=($!)
cat "$RUN_DIR/err" >&2 &
CAT_PIDS+=($!)
if [ "$VERBOSE" = 1 ]; then
	tee "$RUN_DIR/console.log" <"$RUN_DIR/con" >&2 &
else
	cat "$RUN_DIR/con" >"$RUN_DIR/console.log" &
fi
CAT_PIDS+=($!)

# mitigations=off and cryptomgr.notests (skip crypto self-tests at algorithm
# registration) shorten the boot noticeably under TCG; this is a test VM.
APPEND="console=ttyS0 panic=-1 mitigations=off cryptomgr.notests ktls_vm=1"
if [ "$VERBOSE" = 1 ]; then APPEND="$APPEND loglevel=6"; else APPEND="$APPEND quiet loglevel=4"; fi

QEMU=(qemu-system-x86_64 -name ktls-vm "${QEMU_ACCEL[@]}" -m "$MEM" -smp "$CPUS"
	-nodefaults -no-user-config -display none -no-reboot -nic none -rtc base=utc
	-kernel "$CACHE/$(cat "$CACHE/boot-kernel")" -initrd "$CACHE/initrd.cpio" -append "$APPEND"
	-drive "file=$CACHE/rootfs.ext4,format=raw,if=virtio,snapshot=on,cache=unsafe"
	-chardev "file,id=con,path=$RUN_DIR/con" -serial chardev:con
	-device virtio-serial-pci,id=vser
	-chardev "file,id=out,path=$RUN_DIR/out" -device virtserialport,bus=vser.0,chardev=out,name=ktls.stdout
	-chardev "file,id=err,path=$RUN_DIR/err" -device virtserialport,bus=vser.0,chardev=err,name=ktls.stderr
	-virtfs "local,path=${CTL//,/,,},mount_tag=ktlsctl,security_model=none,id=ktlsctl"
	"${SHARE_ARGS[@]}")

qrc=0
if [ "$TIMEOUT" != 0 ]; then
	TMPDIR=$RUN_DIR timeout -k 5 "$TIMEOUT" "${QEMU[@]}" </dev/null 2>"$RUN_DIR/qemu.err" &
else
	TMPDIR=$RUN_DIR "${QEMU[@]}" </dev/null 2>"$RUN_DIR/qemu.err" &
fi
QEMU_PID=$!
wait "$QEMU_PID" 2>/dev/null || qrc=$?
QEMU_PID=""
# Drain the output.  A reader whose fifo qemu never opened (qemu failed
# early) is unblocked by a dummy open, and killed if that is not enough.
for _ in $(seq 100); do
	alive=0
	for p in "${CAT_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
	[ "$alive" = 0 ] && break
	for f in out err con; do { exec 8<>"$RUN_DIR/$f"; exec 8>&-; } 2>/dev/null || true; done
	sleep 0.05
done
for p in "${CAT_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
CAT_PIDS=()

if [ -f "$CTL/rc" ]; then
	exit "$(cat "$CTL/rc")"
fi
if [ "$TIMEOUT" != 0 ] && { [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; }; then
	msg "timeout: VM killed after ${TIMEOUT}s"
	tail -n 20 "$RUN_DIR/console.log" >&2 2>/dev/null || true
	exit 124
fi
msg "VM ended without an exit status (qemu exit $qrc)"
[ -s "$RUN_DIR/qemu.err" ] && sed 's/^/qemu: /' "$RUN_DIR/qemu.err" >&2
if [ -s "$RUN_DIR/console.log" ]; then
	msg "last guest console lines (run with --verbose for all):"
	tail -n 30 "$RUN_DIR/console.log" >&2
fi
exit 125
