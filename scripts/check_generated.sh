#!/usr/bin/env bash
# Fails when regenerating the protobuf code changes what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/gen_proto.sh >/dev/null
if ! git diff --quiet -- raftkube || [ -n "$(git ls-files --others --exclude-standard -- 'raftkube/**/*_pb2*')" ]; then
  echo "check_generated.sh: generated protobuf code is out of date; run scripts/gen_proto.sh and commit" >&2
  git status --short -- raftkube >&2
  exit 1
fi
echo "check_generated.sh: generated code matches proto/"
