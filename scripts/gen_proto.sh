#!/usr/bin/env bash
# Regenerates the committed protobuf and gRPC code under raftkube/ from proto/.
# The only way generated code changes; never edit the output by hand.
# Usage: bash scripts/gen_proto.sh   (needs the dev extras: grpcio-tools, mypy-protobuf)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
case "$PY" in /*) ;; *) PY="$PWD/$PY" ;; esac
mapfile -t protos < <(cd proto && find . -name '*.proto' | sed 's|^\./||' | sort)
if [ "${#protos[@]}" -eq 0 ]; then
  echo "gen_proto.sh: no .proto files under proto/" >&2
  exit 1
fi
# Remove the previous output so deleted .proto files leave nothing behind.
find raftkube -name '*_pb2.py' -o -name '*_pb2.pyi' -o -name '*_pb2_grpc.py' | xargs -r rm -f
(cd proto && "$PY" -m grpc_tools.protoc -I . \
  --python_out=.. --pyi_out=.. --grpc_python_out=.. "${protos[@]}")
# Every generated directory must be a package.
for f in $(find raftkube -name '*_pb2.py'); do
  d=$(dirname "$f")
  while [ "$d" != "raftkube" ] && [ "$d" != "." ]; do
    [ -f "$d/__init__.py" ] || : > "$d/__init__.py"
    d=$(dirname "$d")
  done
done
echo "gen_proto.sh: generated code for ${#protos[@]} files"
