#!/usr/bin/env bash
# Installs what `make bench` needs and is missing, and only that: the peers
# (s3fs; rclone v1.76.0 built into .bench/bin, once), fio, fusermount3 and
# setfattr. Safe to run again. Needs root for apt-get.
set -euo pipefail

cd "$(dirname "$0")/.."
RCLONE_VERSION=v1.76.0

missing=()
command -v s3fs >/dev/null 2>&1 || missing+=(s3fs)
command -v fio >/dev/null 2>&1 || missing+=(fio)
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
command -v setfattr >/dev/null 2>&1 || missing+=(attr)
if ((${#missing[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
		echo "bench-deps: missing ${missing[*]}; as root run: apt-get update && apt-get install -y ${missing[*]}" >&2
		exit 1
	fi
	echo "bench-deps: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x .bench/bin/rclone ]] || ! .bench/bin/rclone version 2>/dev/null | head -1 | grep -q "rclone ${RCLONE_VERSION}"; then
	echo "bench-deps: building rclone ${RCLONE_VERSION} into .bench/bin (once; takes a few minutes)"
	mkdir -p .bench/bin
	GOBIN="$PWD/.bench/bin" go install "github.com/rclone/rclone@${RCLONE_VERSION}"
fi
