"""Generated protobuf and gRPC code (by scripts/gen_proto.sh; never edited by hand)."""
