"""The Deltacloud gRPC server: servicers, interceptors, error mapping, configuration."""
