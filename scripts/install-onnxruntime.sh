#!/usr/bin/env bash
# Installs ONNX Runtime's shared library (libonnxruntime.so.1, version 1.30.0)
# into the sslzoo cache, where onnxrt/ finds it without any configuration:
#
#   ${SSLZOO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sslzoo}/onnxruntime/1.30.0/libonnxruntime.so.1
#
# The library comes from the npm package onnxruntime-node@1.30.0: `npm pack`
# downloads the tarball without running any of its install scripts, and we take
# the one Linux x64 file we need out of it. The file is checked against a
# pinned size and sha256 before it is moved into place (temp file + rename),
# so a failed or tampered download never leaves a library behind.
#
# Idempotent: when the cached file already has the right hash, it prints the
# path and does nothing else. Prints the library path on stdout on success.
#
# With --node it also installs the npm package itself (and its one
# dependency, onnxruntime-common) under .../1.30.0/node/node_modules, with
# --ignore-scripts, so that tests can run exported models from JavaScript
# (scripts/ort-node-run.js) as "another stack" would.
set -euo pipefail

with_node=0
for arg in "$@"; do
	case $arg in
	--node) with_node=1 ;;
	*)
		printf 'usage: %s [--node]\n' "$0" >&2
		exit 2
		;;
	esac
done

version=1.30.0
member=package/bin/napi-v6/linux/x64/libonnxruntime.so.1
want_size=45828512
want_sha=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23

say() { printf 'install-onnxruntime: %s\n' "$*" >&2; }

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) ;;
*)
	say "only linux/x86_64 is packaged here (this is $(uname -s)/$(uname -m)); set ONNXRUNTIME_SHARED_LIBRARY_PATH to your own libonnxruntime"
	exit 1
	;;
esac

cache=${SSLZOO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sslzoo}
dir=$cache/onnxruntime/$version
dest=$dir/libonnxruntime.so.1

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# install_node puts onnxruntime-node into $dir/node (idempotent) and checks
# that the library it carries is the pinned one.
install_node() {
	local prefix=$dir/node
	local pkg=$prefix/node_modules/onnxruntime-node
	if [[ -f $pkg/package.json ]] && grep -q "\"version\": \"$version\"" "$pkg/package.json" &&
		[[ $(sha_of "$pkg/bin/napi-v6/linux/x64/libonnxruntime.so.1") == "$want_sha" ]]; then
		return 0
	fi
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		say "--node needs node and npm on PATH (Debian: apt-get install nodejs npm)"
		exit 1
	fi
	# Install into a temporary prefix, verify, then swap it in.
	local tmp
	tmp=$(mktemp -d "$dir/.node.XXXXXX")
	say "installing onnxruntime-node@$version (npm install --ignore-scripts)"
	if ! npm install --prefix "$tmp" --ignore-scripts --no-audit --no-fund --silent "onnxruntime-node@$version" >&2; then
		rm -rf "$tmp"
		say "npm install onnxruntime-node@$version failed"
		exit 1
	fi
	local lib=$tmp/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1
	if [[ ! -f $lib ]] || [[ $(sha_of "$lib") != "$want_sha" ]]; then
		rm -rf "$tmp"
		say "the onnxruntime-node package does not carry the expected libonnxruntime.so.1 (sha256 $want_sha); not installing"
		exit 1
	fi
	rm -rf "$prefix"
	mv "$tmp" "$prefix"
}

if [[ -f $dest ]] && [[ $(stat -c %s "$dest") == "$want_size" ]] && [[ $(sha_of "$dest") == "$want_sha" ]]; then
	if ((with_node)); then
		install_node
	fi
	echo "$dest"
	exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
	say "npm is not on PATH; install it (Debian: apt-get install npm) or set ONNXRUNTIME_SHARED_LIBRARY_PATH"
	exit 1
fi

mkdir -p "$dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/sslzoo-ort.XXXXXX")
trap 'rm -rf "$work"' EXIT

say "fetching onnxruntime-node@$version with npm pack (no install scripts run)"
if ! (cd "$work" && npm pack --silent "onnxruntime-node@$version" >npm.out 2>npm.err); then
	cat "$work/npm.err" >&2
	say "npm pack onnxruntime-node@$version failed"
	exit 1
fi
tgz=$work/$(tail -n1 "$work/npm.out")
if [[ ! -f $tgz ]]; then
	say "npm pack did not leave the tarball it named ($tgz)"
	exit 1
fi
if ! tar -xzf "$tgz" -C "$work" "$member"; then
	say "$member is not in $(basename "$tgz")"
	exit 1
fi
got=$work/$member

size=$(stat -c %s "$got")
if [[ $size != "$want_size" ]]; then
	say "size mismatch for $member: got $size bytes, want $want_size; not installing"
	exit 1
fi
sha=$(sha_of "$got")
if [[ $sha != "$want_sha" ]]; then
	say "sha256 mismatch for $member: got $sha, want $want_sha; not installing"
	exit 1
fi

# Same file system as the destination, so the final rename is atomic.
tmp=$(mktemp "$dir/.libonnxruntime.so.1.XXXXXX")
cp "$got" "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$dest"
say "installed ONNX Runtime $version"
if ((with_node)); then
	install_node
fi
echo "$dest"
