"""stigmer-local."""

# Kept here rather than read from package metadata at start-up, which would cost
# tens of milliseconds a runner must not spend; a test keeps it equal to pyproject's.
__version__ = "0.1.0"
