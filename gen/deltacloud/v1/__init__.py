"""Generated protobuf and gRPC code for the deltacloud.v1 API (see protos/)."""
