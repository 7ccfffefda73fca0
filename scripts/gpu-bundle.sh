#!/usr/bin/env bash
# Makes the bundle that scripts/gpu-check.sh runs on a GPU machine without .NET:
#
#   scripts/gpu-bundle.sh [OUT.tar.gz]          (default artifacts/swc-gpu-bundle.tar.gz)
#
# bundle/swc/        framework-dependent Release publish of src/Cli (swc.dll)
# bundle/gpu-tests/  framework-dependent Release publish of the GPU test project (an xunit v3 executable);
#                    GPU_TESTS_PROJECT=path/to/X.csproj substitutes another (default tests/Gpu/ShiftWise.Gpu.Tests.csproj)
# bundle/dotnet/     the local .NET install's `dotnet` host, host/fxr/<ver>/ and shared/Microsoft.NETCore.App/<ver>/
# bundle/tools/      tools/*.py, tools/fixtures/*.py, tools/gpu/*.py in the same layout (the PyTorch peer in gpu/
#                    imports fixtures/sw_torch.py)
# bundle/bench/      bench/train_step_peers.py (the training-step peers; imports ../tools/fixtures/sw_torch.py and
#                    ../tools/gpu/bench_torch_peer.py's select_device), bench/precision_peers.py (+ precision_rows.py)
#                    and bench/unireplknet.py
#                    (issue 22's side-by-side rows and UniRepLKNet-T; gpu-check's GPU_CHECK_ONLY=precision; the
#                    accuracy check is tools/gpu/precision_accuracy.py, which imports tools/fixtures/gen_sw_v2_golden.py)
# bundle/samples/    samples/fashion-mnist.json (gpu-check's GPU_CHECK_ONLY=train; the data, ~31 MB, does not fit the
#                    bundle: carry it beside, FMNIST_DIR)
# bundle/gpu-check.sh (+ gpu-check-precision.sh, its section P), bundle/MANIFEST (versions, commit, the test assembly's name)
#
# The test publish's code-coverage collector is left out and files both publishes share are stored once (hard
# links). Everything is made in a temporary folder beside OUT and renamed into place at the end; OUT must stay
# under 60 MB. Relative paths (OUT, GPU_TESTS_PROJECT) are taken from the current folder.
set -uo pipefail
caller="$PWD"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DOTNET_NOLOGO=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

die() { echo "gpu-bundle: $*" >&2; exit 1; }

out="${1:-$root/artifacts/swc-gpu-bundle.tar.gz}"
case "$out" in *.tar.gz|*.tgz) ;; *) die "the output must end in .tar.gz or .tgz, got '$out'";; esac
case "$out" in /*) ;; *) out="$caller/$out";; esac
limit_bytes=$((60 * 1000 * 1000))
tests_proj="${GPU_TESTS_PROJECT:-tests/Gpu/ShiftWise.Gpu.Tests.csproj}"
if [ -n "${GPU_TESTS_PROJECT:-}" ]; then
  case "$tests_proj" in /*) ;; *) tests_proj="$caller/$tests_proj";; esac
fi
cd "$root"
cli_proj="src/Cli/ShiftWise.Cli.csproj"

[ -f "$cli_proj" ] || die "$cli_proj is missing (run this from a ShiftWise.Compiler checkout)"
if [ ! -f "$tests_proj" ]; then
  die "the GPU test project $tests_proj does not exist (tests/Gpu is not written yet?);" \
    "set GPU_TESTS_PROJECT=path/to/Project.csproj to bundle another test project"
fi
command -v dotnet >/dev/null || die "no dotnet on PATH (the .NET 10 SDK is needed to publish)"
dotnet_dir="$(dirname "$(readlink -f "$(command -v dotnet)")")"
[ -x "$dotnet_dir/dotnet" ] || die "$dotnet_dir/dotnet is not an executable .NET host"

# the newest 10.x shared runtime and host resolver of the local install
pick_version() {  # highest version-named subfolder of $1 whose name starts with $2
  find "$1" -mindepth 1 -maxdepth 1 -type d -name "$2*" -printf '%f\n' 2>/dev/null | sort -V | tail -n 1
}
fx_ver="$(pick_version "$dotnet_dir/shared/Microsoft.NETCore.App" 10.)"
fxr_ver="$(pick_version "$dotnet_dir/host/fxr" 10.)"
[ -n "$fx_ver" ] || die "no shared/Microsoft.NETCore.App/10.* under $dotnet_dir"
[ -n "$fxr_ver" ] || die "no host/fxr/10.* under $dotnet_dir"

mkdir -p "$(dirname "$out")" || die "cannot create the folder of $out"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
tmp="$(mktemp -d "$(dirname "$out")/.swc-gpu-bundle.XXXXXX")" || die "cannot make a temporary folder beside $out"
trap 'rm -rf "$tmp"' EXIT
b="$tmp/bundle"
mkdir -p "$b/dotnet/host/fxr" "$b/dotnet/shared/Microsoft.NETCore.App" "$b/tools/fixtures" "$b/tools/gpu" "$b/bench"

publish() {  # project, destination
  local log="$tmp/publish-$(basename "$2").log"
  echo "gpu-bundle: dotnet publish $1 -c Release --self-contained false -> bundle/$(basename "$2")/"
  # plain IL (SwcReadyToRun=false): the ReadyToRun images of the CLI's build (Roslyn's above all) made the bundle
  # 70.8 MB, over its limit, and a GPU check gains nothing from a faster warm start
  if ! dotnet publish "$1" -c Release --self-contained false -p:SwcReadyToRun=false -o "$2" -nologo -v q \
      >"$log" 2>&1; then
    grep -E "error|Error" "$log" | sort -u >&2 || cat "$log" >&2
    die "dotnet publish $1 failed (log above)"
  fi
  # the GPU machines are linux-x64: native assets for other platforms (SkiaSharp ships Windows, macOS, musl, ARM and
  # more: about 440 MB) are left out; the runtime never probes another platform's entries of deps.json
  if [ -d "$2/runtimes" ]; then
    find "$2/runtimes" -mindepth 1 -maxdepth 1 ! -name linux-x64 ! -name unix ! -name linux -exec rm -rf {} +
  fi
}
publish "$cli_proj" "$b/swc"
publish "$tests_proj" "$b/gpu-tests"
[ -f "$b/swc/swc.dll" ] || die "the publish of $cli_proj has no swc.dll"
tests_asm="$(basename "$tests_proj" .csproj)"
# the assembly name may differ from the project file's name: take it from the runtimeconfig the publish wrote
rc_file="$(find "$b/gpu-tests" -maxdepth 1 -name '*.runtimeconfig.json' | head -n 1)"
[ -n "$rc_file" ] || die "the publish of $tests_proj has no *.runtimeconfig.json (is it an executable test project?)"
tests_asm="$(basename "$rc_file" .runtimeconfig.json)"
[ -f "$b/gpu-tests/$tests_asm.dll" ] || die "the publish of $tests_proj has no $tests_asm.dll"

# The test SDK's publish carries the code-coverage data collector (CodeCoverage/, the instrumentation engines in
# x86/ x64/ arm64/ alpine/ ubuntu/ macos/: ~9 MB compressed). It serves only `dotnet test --collect`; the xunit v3
# executable never loads it, and none of it is in the deps.json. Dropped.
for d in CodeCoverage x86 x64 arm64 alpine ubuntu macos; do
  p="$b/gpu-tests/$d"
  [ -d "$p" ] || continue
  if grep -q "\"$d/" "$b/gpu-tests/$tests_asm.deps.json"; then continue; fi
  if [ "$d" != CodeCoverage ] && [ -n "$(find "$p" -type f ! -name '*InstrumentationEngine*' \
       ! -name '*CoverageInstrumentationMethod*' ! -name 'Cov_*.config' -print -quit)" ]; then continue; fi
  rm -rf "$p"
done
# Files the two publishes share (Roslyn, Scriban, our assemblies) become hard links: tar stores them once.
linked=0
while IFS= read -r -d '' f; do
  rel="${f#"$b/gpu-tests/"}"
  if [ -f "$b/swc/$rel" ] && cmp -s "$f" "$b/swc/$rel"; then
    ln -f "$b/swc/$rel" "$f" && linked=$((linked + 1))
  fi
done < <(find "$b/gpu-tests" -type f -print0)
echo "gpu-bundle: $linked files of bundle/gpu-tests/ are hard links to the same files in bundle/swc/"

echo "gpu-bundle: .NET runtime $fx_ver (hostfxr $fxr_ver) from $dotnet_dir"
cp -p "$dotnet_dir/dotnet" "$b/dotnet/" || die "copying the dotnet host failed"
cp -pR "$dotnet_dir/host/fxr/$fxr_ver" "$b/dotnet/host/fxr/" || die "copying host/fxr/$fxr_ver failed"
cp -pR "$dotnet_dir/shared/Microsoft.NETCore.App/$fx_ver" "$b/dotnet/shared/Microsoft.NETCore.App/" \
  || die "copying shared/Microsoft.NETCore.App/$fx_ver failed"
for f in LICENSE.txt ThirdPartyNotices.txt; do
  [ -f "$dotnet_dir/$f" ] && cp -p "$dotnet_dir/$f" "$b/dotnet/"
done

for d in . fixtures gpu; do
  cp -p tools/$d/*.py "$b/tools/$d/" || die "copying tools/$d/*.py failed"
done
for f in train_step_peers.py precision_peers.py precision_rows.py unireplknet.py; do
  cp -p "bench/$f" "$b/bench/" || die "copying bench/$f failed"
done
mkdir -p "$b/samples" && cp -p samples/fashion-mnist.json "$b/samples/" || die "copying samples/fashion-mnist.json failed"
cp -p scripts/gpu-check.sh scripts/gpu-check-precision.sh "$b/" || die "copying scripts/gpu-check*.sh failed"
chmod +x "$b/gpu-check.sh"

commit="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | head -n 1)"
{
  echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit=$commit${dirty:+ (with uncommitted changes)}"
  echo "dotnet_runtime=$fx_ver"
  echo "hostfxr=$fxr_ver"
  echo "swc=swc/swc.dll"
  echo "gpu_tests_project=${tests_proj#"$root/"}"
  echo "gpu_tests=gpu-tests/$tests_asm.dll"
} >"$b/MANIFEST"

# the bundle must run with nothing but its own runtime: check that the copied host starts swc
if ! DOTNET_ROOT="$b/dotnet" DOTNET_MULTILEVEL_LOOKUP=0 "$b/dotnet/dotnet" "$b/swc/swc.dll" --version >/dev/null 2>"$tmp/version.err"; then
  cat "$tmp/version.err" >&2
  die "the bundled runtime does not start swc ('dotnet swc.dll --version' failed)"
fi

if ! DOTNET_ROOT="$b/dotnet" DOTNET_MULTILEVEL_LOOKUP=0 "$b/dotnet/dotnet" "$b/gpu-tests/$tests_asm.dll" -list classes \
     -noLogo >"$tmp/list.out" 2>&1; then
  cat "$tmp/list.out" >&2
  die "the bundled test executable does not start on the bundled runtime ('dotnet $tests_asm.dll -list classes' failed)"
fi

echo "gpu-bundle: packing"
tar -C "$tmp" --owner=0 --group=0 -czf "$tmp/bundle.tar.gz" bundle || die "tar failed"
size="$(stat -c %s "$tmp/bundle.tar.gz")"
mb="$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1e6 }')"
unpacked="$(du -sm "$b" | cut -f1)"
if [ "$size" -ge "$limit_bytes" ]; then
  die "the bundle is $mb MB ($size bytes; $unpacked MiB unpacked), not under the 60 MB limit; $out not written"
fi
mv -f "$tmp/bundle.tar.gz" "$out" || die "cannot move the bundle to $out"
echo "gpu-bundle: wrote $out: $mb MB ($size bytes; $unpacked MiB unpacked; swc, $tests_asm, .NET $fx_ver)"
