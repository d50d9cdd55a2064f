#!/usr/bin/env bash
# Builds raftkube's wheel and a wheel for every runtime dependency into one directory, so
# machines without network access (the Vagrant guests, the local multi-host bring-up)
# install with `deploy/provision/install_raftkube.sh --wheels DIR` (pip --no-index).
#
# Usage: bash scripts/build_wheels.sh [--out DIR] [--python PY]
#   --out DIR    target directory (default dist/wheels in the checkout)
#   --python PY  interpreter used to build; its version must be the guests' (Debian 12:
#                Python 3.11), since dependency wheels such as grpcio are per-version
#                (default /work/venv/bin/python if present, else python3)
#
# Also writes DIR/dependencies.txt: the file names of exactly the dependency wheels pip
# installs with raftkube's wheel from DIR (resolved offline, one per line, sorted). It is the
# dependency set's identity: deploy/vagrant/build_box.sh --wheels DIR bakes those wheels into
# the box's venv and keys the box on this file; deploy/provision/install_raftkube.sh installs
# only raftkube when the venv was baked from an identical file.
#
# Idempotent: older raftkube wheels in DIR are removed first, so DIR holds exactly one
# raftkube wheel; dependency wheels already in DIR are reused by pip (stale ones may stay,
# dependencies.txt names only those resolved). Needs access to the Python package index (or a
# pip cache holding every dependency) on the building machine.
set -euo pipefail
cd "$(dirname "$0")/.."

GUEST_PYTHON_VERSION="3.11"
out="dist/wheels"
python=""

die() { echo "build_wheels: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --python) python="${2:?--python needs an interpreter}"; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

if [ -z "$python" ]; then
  if [ -x /work/venv/bin/python ]; then python=/work/venv/bin/python; else python=python3; fi
fi
command -v "$python" >/dev/null || die "interpreter '$python' not found"
version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$version" = "$GUEST_PYTHON_VERSION" ] \
  || die "$python is Python $version; guests run Python $GUEST_PYTHON_VERSION: pass --python"
"$python" -m pip --version >/dev/null 2>&1 || die "$python has no pip"

mkdir -p "$out"
rm -f "$out"/raftkube-*.whl
t0=$(date +%s)
# Build raftkube from a clean copy of the source so stale build/ or egg-info state in the
# checkout never leaks into the wheel.
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
tar --exclude=./.git --exclude=./.venv --exclude=./dist --exclude=./build \
    --exclude='./*.egg-info' --exclude=./.vagrant --exclude='*/__pycache__' -cf - . \
  | tar -C "$src" -xf -
"$python" -m pip --disable-pip-version-check wheel -q --wheel-dir "$out" "$src" \
  || die "pip wheel failed"
shopt -s nullglob
built=("$out"/raftkube-*.whl)
[ "${#built[@]}" -eq 1 ] || die "expected one raftkube wheel in $out, found ${#built[@]}"
# The resolution pip would make in a guest (--no-index from DIR), as a JSON report.
report="$src/install-report.json"
"$python" -m pip --disable-pip-version-check install -q --dry-run --ignore-installed \
    --no-index --find-links "$out" --report "$report" "${built[0]}" \
  || die "the wheels in $out do not satisfy raftkube's dependencies"
"$python" - "$report" "$(cd "$out" && pwd -P)" >"$out/dependencies.txt.partial" <<'PY' || die "could not read pip's report"
import json
import sys
import urllib.parse
from pathlib import PurePosixPath

report = json.load(open(sys.argv[1]))
out_dir = PurePosixPath(sys.argv[2])
names = []
for item in report["install"]:
    if item["metadata"]["name"] == "raftkube":
        continue
    url = item["download_info"]["url"]
    if not url.startswith("file://") or not url.endswith(".whl"):
        sys.exit(f"dependency {item['metadata']['name']} does not resolve to a local wheel: {url}")
    path = PurePosixPath(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if path.parent != out_dir:
        sys.exit(f"dependency wheel {path} is not in {out_dir}: copy it there")
    names.append(path.name)
print("\n".join(sorted(names)))
PY
mv "$out/dependencies.txt.partial" "$out/dependencies.txt"
count=$(find "$out" -maxdepth 1 -name '*.whl' | wc -l)
echo "build_wheels: $count wheels in $out (raftkube: $(basename "${built[0]}"); $(wc -l <"$out/dependencies.txt") dependencies in dependencies.txt) in $(( $(date +%s) - t0 ))s"
