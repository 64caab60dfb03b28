#!/usr/bin/env bash
# Installs what ampfs needs and is missing, and only that: fusermount3
# (Debian package fuse3). Safe to run again.
set -euo pipefail

if ! command -v fusermount3 >/dev/null 2>&1; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "deps: fusermount3 is missing; as root run: apt-get update && apt-get install -y fuse3" >&2
		exit 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "deps: fusermount3 is missing and there is no apt-get; install your distribution's fuse3 package" >&2
		exit 1
	fi
	echo "deps: installing fuse3 (fusermount3)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 >/dev/null
fi

if [[ ! -c /dev/fuse ]]; then
	echo "deps: /dev/fuse is missing: load the module (modprobe fuse), or give the container the device (docker run --device /dev/fuse --cap-add SYS_ADMIN)" >&2
	exit 1
fi
