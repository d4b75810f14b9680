#!/usr/bin/env bash
# Runs every native Go fuzz target in the module for FUZZTIME each, one
# after the other (go test -fuzz takes one target per package and run).
# A crasher is written by Go under the package's testdata/fuzz/FuzzXxx/;
# fix the reader, keep the file as a seed, and commit both.
#   FUZZTIME=60s ./scripts/fuzz.sh            # every target
#   FUZZTIME=5s ./scripts/fuzz.sh ./data/...  # the targets under ./data
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
pkgs=("$@")
[[ ${#pkgs[@]} -gt 0 ]] || pkgs=(./...)

targets=()
while read -r pkg; do
	while read -r name; do
		[[ $name == Fuzz* ]] && targets+=("$pkg $name")
	done < <($GO test -list '^Fuzz' "$pkg" 2>/dev/null || true)
done < <($GO list -f '{{if .TestGoFiles}}{{.ImportPath}}{{end}}' "${pkgs[@]}")
[[ ${#targets[@]} -gt 0 ]] || { echo "fuzz: no fuzz targets under ${pkgs[*]}" >&2; exit 1; }

echo "fuzz: ${#targets[@]} targets, $FUZZTIME each" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=()
i=0
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	i=$((i + 1))
	echo "fuzz: [$i/${#targets[@]}] $pkg $name" >&2
	if ! $GO test "$pkg" -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" >"$log" 2>&1; then
		tail -30 "$log" >&2
		failed+=("$pkg $name")
	else
		grep -E '^fuzz: elapsed' "$log" | tail -1 >&2 || true
	fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
	printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets clean" >&2
