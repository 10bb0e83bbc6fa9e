#!/bin/bash
# Install what stratafs needs to build and test, from Debian's packages.
# Runs `apt-get update` once and only when something is missing.
set -euo pipefail

PACKAGES=(
	gcc pkg-config meson ninja-build
	libfuse3-dev fuse3 libglib2.0-dev libcmocka-dev
	python3 attr util-linux procps mount strace
	podman runc conmon uidmap slirp4netns busybox-static
)
# libFuzzer targets (contrib/fuzz.sh): clang 14 and its runtimes
# (libclang_rt.fuzzer, asan, ubsan)
PACKAGES+=(clang libclang-rt-14-dev)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps.sh: missing packages: ${missing[*]} (run as root to install)" >&2
		exit 1
	fi
	echo "deps.sh: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
