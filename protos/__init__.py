"""The stigmer.local.v1 wire contract: .proto files and the Python code generated from them."""
