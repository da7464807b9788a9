"""The gRPC edge: servicers, auth and error mapping. Protobuf stays in here (and in
daemon.eventcodec); the core below works on plain dataclasses."""
