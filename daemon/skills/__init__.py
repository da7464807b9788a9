"""The skills registry: what skills exist, where each came from, and which a task gets.

Pure code over folders; the daemon and the runner wire it to the API and the agent.
"""

from daemon.skills.registry import Entry, Registry, Source
from daemon.skills.selection import Choice, choose

__all__ = ["Choice", "Entry", "Registry", "Source", "choose"]
