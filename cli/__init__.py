"""stigmer-local."""
