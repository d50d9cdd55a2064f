#!/usr/bin/env bash
# Fails when regenerating the protobuf code changes what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/gen_proto.sh >/dev/null
generated=(':(glob)raftkube/**/*_pb2.py' ':(glob)raftkube/**/*_pb2.pyi' ':(glob)raftkube/**/*_pb2_grpc.py')
if ! git diff --quiet -- "${generated[@]}" || [ -n "$(git ls-files --others --exclude-standard -- "${generated[@]}")" ]; then
  echo "check_generated.sh: generated protobuf code is out of date; run scripts/gen_proto.sh and commit" >&2
  git status --short -- "${generated[@]}" >&2
  exit 1
fi
echo "check_generated.sh: generated code matches proto/"
