#!/usr/bin/env bash
# Rewrites tests/replay/kernels.sha256, the SHA-256 of every generated file the process-replay test renders
# (tests/Runtime.Tests/ProcessReplayTests.cs). Run it when a change to generated code is intended, and commit the list
# with the change: the diff of the list shows which kernels changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
dotnet build tests/Runtime.Tests/ShiftWise.Runtime.Tests.csproj -c Release -nologo -v q
SWC_REPLAY_WRITE=1 dotnet test tests/Runtime.Tests/ShiftWise.Runtime.Tests.csproj -c Release --no-build \
  --filter "FullyQualifiedName~ProcessReplayTests" -nologo
echo "tests/replay/kernels.sha256: $(wc -l < tests/replay/kernels.sha256) files"
git --no-pager diff --stat -- tests/replay/kernels.sha256 || true
