#!/usr/bin/env bash
# Installs raftkube and its dependencies from a directory of wheels into a virtualenv,
# without network access (pip --no-index), and links the commands into a bin directory.
#
# Usage: install_raftkube.sh --wheels DIR [--prefix DIR] [--bin-dir DIR] [--python PY]
#   --wheels DIR   wheels built by scripts/build_wheels.sh (raftkube-*.whl and every
#                  dependency); required
#   --prefix DIR   install root; the venv goes to DIR/venv (default /opt/raftkube)
#   --bin-dir DIR  where `raftkube` and `raftkubectl` links go (default /usr/local/bin;
#                  "none" to skip)
#   --python PY    interpreter that creates the venv (default python3)
#
# Idempotent: an existing venv is reused; the raftkube wheel found in DIR is always
# (re)installed, so a rebuilt wheel of the same version replaces the old one. Exits non-zero
# with a message naming the missing piece when DIR holds no raftkube wheel or a dependency
# wheel is missing; nothing is downloaded.
#
# Fast path (the Vagrant box): when the venv holds raftkube-dependencies.txt (written by
# deploy/vagrant/build_box.sh --wheels, which baked those dependency wheels into it) and that
# file is identical to DIR/dependencies.txt (written by scripts/build_wheels.sh), the
# dependencies are already installed: only raftkube's wheel is installed (--no-deps), without
# byte-compiling it (--no-compile: a daemon compiles, on first import, only the modules it
# uses, instead of pip compiling all of them under emulation). Otherwise dependencies come
# from DIR.
set -euo pipefail

wheels=""
prefix="/opt/raftkube"
bin_dir="/usr/local/bin"
python="python3"

die() { echo "install_raftkube: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) wheels="${2:?--wheels needs a directory}"; shift 2 ;;
    --prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
    --bin-dir) bin_dir="${2:?--bin-dir needs a directory or none}"; shift 2 ;;
    --python) python="${2:?--python needs an interpreter}"; shift 2 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

[ -n "$wheels" ] || die "--wheels DIR is required"
[ -d "$wheels" ] || die "wheel directory $wheels does not exist (run scripts/build_wheels.sh)"
shopt -s nullglob
raftkube_wheels=("$wheels"/raftkube-*.whl)
shopt -u nullglob
[ "${#raftkube_wheels[@]}" -gt 0 ] \
  || die "no raftkube-*.whl in $wheels (run scripts/build_wheels.sh)"
[ "${#raftkube_wheels[@]}" -eq 1 ] \
  || die "several raftkube wheels in $wheels (${raftkube_wheels[*]}): keep one"
command -v "$python" >/dev/null || die "interpreter '$python' not found"

venv="$prefix/venv"
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$prefix"
  "$python" -m venv "$venv" || die "could not create a virtualenv at $venv (python3-venv?)"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q)
baked="$venv/raftkube-dependencies.txt"
if [ -f "$baked" ] && [ -f "$wheels/dependencies.txt" ] && cmp -s "$baked" "$wheels/dependencies.txt"; then
  echo "install_raftkube: dependencies already in $venv ($(wc -l <"$baked") wheels, as in $wheels/dependencies.txt)"
  compile=(--no-compile)
else
  if [ -f "$baked" ]; then
    echo "install_raftkube: $baked differs from $wheels/dependencies.txt (or that is missing): installing dependencies from $wheels"
  fi
  # Dependencies (only what is missing).
  "${pip[@]}" install --no-index --find-links "$wheels" "${raftkube_wheels[0]}" \
    || die "installing from $wheels failed (a dependency wheel is missing? rebuild with scripts/build_wheels.sh, and the box with deploy/vagrant/build_box.sh --wheels DIR)"
  compile=()
fi
# raftkube itself, forced, so a rebuilt wheel of an unchanged version is picked up.
"${pip[@]}" install --no-index --no-deps --force-reinstall "${compile[@]}" "${raftkube_wheels[0]}" \
  || die "installing ${raftkube_wheels[0]} failed"

"$venv/bin/raftkube" version >/dev/null || die "$venv/bin/raftkube does not run"

if [ "$bin_dir" != "none" ]; then
  mkdir -p "$bin_dir"
  ln -sfn "$venv/bin/raftkube" "$bin_dir/raftkube"
  ln -sfn "$venv/bin/raftkubectl" "$bin_dir/raftkubectl"
fi
echo "install_raftkube: $("$venv/bin/raftkube" version) in $venv"
