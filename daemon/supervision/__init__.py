"""Runner supervision: states, pure policy, the process loop, the orphan journal."""
