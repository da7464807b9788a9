"""Skills shipped with stigmer-local; see each folder's SKILL.md."""
