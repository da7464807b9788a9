"""Agent tasks: an LLM loop with tools, judged by a policy, run by a runner.

Only this light entry point is imported with the runner; the loop, and with it the
`anthropic` SDK, the tools and the policy, load when the first agent task arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from protos import task_pb2, worker_service_pb2
from runner.client import AgentCalls
from runner.command import Outcome, failed


async def run_agent(
    client: AgentCalls,
    task: task_pb2.Task,
    attempt: int,
    claim_env: Mapping[str, str],
    *,
    heartbeat_wait: float = 1.0,
    on_drain: Callable[[], None] = lambda: None,
    skills: Sequence[worker_service_pb2.SkillRef] = (),
) -> Outcome | None:
    """Runs one attempt of an agent task (see runner.agent.loop.run_agent)."""
    try:
        from runner.agent import loop
    except ImportError as exc:
        # A broken install fails the task with its reason instead of the runner.
        return failed(f"the agent loop cannot be loaded: {exc}")
    return await loop.run_agent(
        client,
        task,
        attempt,
        claim_env,
        heartbeat_wait=heartbeat_wait,
        on_drain=on_drain,
        skills=skills,
    )
