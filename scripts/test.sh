#!/usr/bin/env bash
# Runs every test project of the solution and prints the summary line "N passed, N failed, N skipped" last,
# summed from the TRX results (dotnet test's own output is not a summary CI reads).
# Extra arguments go to dotnet test (e.g. --filter "FullyQualifiedName~Parser").
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
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
passed=0 failed=0 skipped=0
shopt -s nullglob
trx=("$results"/*.trx)
for f in "${trx[@]}"; do
  counters="$(grep -o '<Counters [^>]*>' "$f" | head -n 1)"
  get() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  passed=$((passed + $(get passed)))
  failed=$((failed + $(get failed) + $(get error) + $(get timeout) + $(get aborted)))
  skipped=$((skipped + $(get total) - $(get executed)))
done
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1   # the build or a test host broke before any result was written: count it, never report green
  echo "dotnet test exited with $rc without a failed test in the results (build error or crashed test host)" >&2
fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
