#!/usr/bin/env bash
# Runs every native Go fuzz target in the module for FUZZTIME each, one
# after the other (go test -fuzz takes one target per package and run).
# A crasher is written by Go under the package's testdata/fuzz/FuzzXxx/;
# fix the reader, keep the file as a seed, and commit both.
#   FUZZTIME=60s ./scripts/fuzz.sh            # every target
#   FUZZTIME=5s ./scripts/fuzz.sh ./data/...  # the targets under ./data
# FUZZ_FRESH=1 (make test) starts each target from its committed corpus
# alone, in a throwaway cache: inputs a long local run left in Go's fuzz
# cache would otherwise eat the whole smoke time on baseline coverage
# ("context deadline exceeded"), and a smoke should run the same anywhere.
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
# run_target fuzzes one target into $log and prints ok, race or fail.
# race is Go 1.26's coordinator reporting its own -fuzztime deadline as a
# failure (fixed in Go 1.27): a bare "context deadline exceeded" with no
# failing input written and no panic. A real finding always writes one.
run_target() {
	local args=() cache=""
	if [[ ${FUZZ_FRESH:-} == 1 ]]; then
		cache=$(mktemp -d)
		args=(-args "-test.fuzzcachedir=$cache")
	fi
	local rc=0
	$GO test "$1" -run '^$' -fuzz "^${2}\$" -fuzztime "$FUZZTIME" "${args[@]}" >"$log" 2>&1 || rc=$?
	[[ -n $cache ]] && rm -rf "$cache"
	if ((rc == 0)); then
		echo ok
	elif grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$log"; then
		echo race
	else
		echo fail
	fi
}

failed=()
i=0
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	i=$((i + 1))
	echo "fuzz: [$i/${#targets[@]}] $pkg $name" >&2
	outcome=$(run_target "$pkg" "$name")
	if [[ $outcome == race ]]; then
		echo "fuzz: $name stopped on Go's fuzztime deadline race (golang/go#75804: 'context deadline exceeded', no failing input); once more" >&2
		outcome=$(run_target "$pkg" "$name")
	fi
	case $outcome in
	ok) grep -E '^fuzz: elapsed' "$log" | tail -1 >&2 || true ;;
	race) echo "fuzz: $name hit the deadline race again; counted clean, as no input failed" >&2 ;;
	*)
		tail -30 "$log" >&2
		failed+=("$pkg $name")
		;;
	esac
done
if [[ ${#failed[@]} -gt 0 ]]; then
	printf 'fuzz: FAILED %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets clean" >&2
