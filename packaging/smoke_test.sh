#!/bin/sh
# Smoke test of a built bundle: its own --self-test (offscreen window, model load, one
# answer) and a CLI command, run from dist/ with nothing of the source tree on the path.
# Usage: packaging/smoke_test.sh [dist/glassbox]   (after `make package`)
set -eu
BUNDLE=${1:-dist/glassbox}
[ -x "$BUNDLE/glassbox" ] || { echo "smoke test: no bundle at $BUNDLE/glassbox (run make package)" >&2; exit 2; }
BUNDLE=$(cd "$BUNDLE" && pwd)  # absolute: the test runs from a scratch directory
EXE="$BUNDLE/glassbox"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"  # not the repository: the bundle must carry everything itself
export GLASSBOX_HOME="$WORK/home" PYTHONPATH=
"$EXE" --help > /dev/null
"$EXE" --self-test
echo "smoke test passed: $(du -sh "$BUNDLE" 2>/dev/null | cut -f1) bundle at $BUNDLE"
