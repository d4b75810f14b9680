#!/usr/bin/env bash
# Regenerates data/text/testdata/tokenizer_golden.json with the BertTokenizer
# of @xenova/transformers 2.17.2 (pure JavaScript), installed into a temporary
# folder without running install scripts. Nothing is downloaded from a model
# hub: the tokenizers are built from our own vocab files in data/text/testdata.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/sslzoo-tokgolden.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm install --silent --ignore-scripts --no-audit --no-fund @xenova/transformers@2.17.2 >/dev/null)
opticks="$(go env GOROOT)/src/testdata/Isaac.Newton-Opticks.txt"
node "$root/scripts/gen_tokenizer_golden.mjs" "$work/node_modules/@xenova/transformers" "$opticks"
