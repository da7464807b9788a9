"""What the daemon, the runner and the CLI agree on: paths, auth and redaction."""
