#!/usr/bin/env bash
# Runs every test project of the solution and prints the summary line "N passed, N failed, N skipped" last, summed from
# the TRX results (dotnet test's own output is not a summary CI reads), after one line per skipped test with its reason.
# With CI=true a skipped test that is not on tests/ci-allowed-skips.txt counts as failed (scripts/test-summary.py).
# Extra arguments go to dotnet test (e.g. --filter "FullyQualifiedName~Parser").
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
if ! command -v python3 >/dev/null; then
  echo "python3 is not on PATH (scripts/test-summary.py reads the test results; install Debian's python3)"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
# The tests never read a developer's cache: each test gets its own folder (tests/Shared/IsolatedCache.cs); this one
# catches anything that reads the environment directly, and is removed afterwards.
SWC_CACHE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/swc-test-cache.XXXXXX")"
export SWC_CACHE_DIR
# The tests' temporary folders (Directory.CreateTempSubdirectory, Path.GetTempPath honour TMPDIR) go into one folder
# that is removed afterwards: many tests leave theirs for a failure to be inspected, and they piled up to 25 GB here.
# SWC_KEEP_TEST_TMP=1 keeps it (the path is printed).
test_tmp="$(mktemp -d "${TMPDIR:-/tmp}/swc-tests.XXXXXX")"
trap 'rm -rf "$SWC_CACHE_DIR"; if [ "${SWC_KEEP_TEST_TMP:-0}" = 1 ]; then echo "kept $test_tmp" >&2; else rm -rf "$test_tmp"; fi' EXIT
export TMPDIR="$test_tmp"
results="$root/TestResults"
rm -rf "$results"
rc=0
if dotnet build ShiftWise.Compiler.sln -c Release -nologo -v q; then
  # one project at a time, each with its own TRX name (parallel runs can collide on timestamped names)
  for proj in tests/*/*.csproj; do
    name="$(basename "$proj" .csproj)"
    dotnet test "$proj" -c Release --no-build --logger "trx;LogFileName=$name.trx" --results-directory "$results" "$@" \
      || rc=$?
  done
else
  rc=$?
fi
ci=()
[ "${CI:-}" = "true" ] && ci=(--ci)
python3 scripts/test-summary.py "$results" tests/ci-allowed-skips.txt "${ci[@]}" --exit-code "$rc"
