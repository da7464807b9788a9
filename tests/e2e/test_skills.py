"""Skills end to end: a real daemon and runner, the real SDK, the fake Messages API.

A user skill named by a task is offered by name and description only, and its body
reaches the model after `load_skill`; a user skill overrides the shipped one of the
same name; the registry picks by domains within a token budget; a skill's secret
reaches the tools of the tasks that use it, and nothing else."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from protos import event_pb2, skill_service_pb2, skill_service_pb2_grpc, task_pb2, task_service_pb2
from tests.fake_anthropic import (
    FakeAnthropic,
    Request,
    fake_anthropic,
    reply,
    result_text,
    tool_results,
    tool_use,
)
from tests.support import STIGMER, Client, Daemon, env_for, wait_until, write_config

S = task_pb2
KEY = "sk-ant-test-" + uuid.uuid4().hex
SKILL_TOKEN = "tok-" + uuid.uuid4().hex
# A phrase only the body holds: it must not reach the model before `load_skill`.
BODY_MARKER = "Always-reply-with-the-word-" + uuid.uuid4().hex[:8]


@pytest.fixture
def api() -> Iterator[FakeAnthropic]:
    with fake_anthropic() as fake:
        yield fake


def configure(daemon: Daemon, api: FakeAnthropic) -> None:
    write_config(
        daemon.home,
        '[daemon]\ntcp_address = ""\n[runners]\ncount = 1\n[secrets]\nrequired = []\n'
        f'[agent]\nbase_url = "{api.base_url}"\n',
    )


@pytest.fixture
async def client(daemon: Daemon, api: FakeAnthropic) -> AsyncIterator[Client]:
    configure(daemon, api)
    yield await daemon.start(stdin_secrets={"ANTHROPIC_API_KEY": KEY, "SKILL_TOKEN": SKILL_TOKEN})
    log = daemon.log_text()
    assert KEY not in log and SKILL_TOKEN not in log


def user_skill(home: Path, name: str, description: str, body: str, **metadata: Any) -> Path:
    folder = home / "config" / "skills" / name
    folder.mkdir(parents=True, exist_ok=True)
    meta = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in metadata.items())
    (folder / "SKILL.md").write_text(
        f"---\nname: {name}\ndescription: {description}\n"
        + (f"metadata:\n{meta}" if meta else "")
        + f"---\n\n{body}\n"
    )
    return folder


async def create_agent(client: Client, prompt: str, workspace: Path, **agent: Any) -> S.Task:
    agent.setdefault("policy_level", S.POLICY_LEVEL_AUTONOMOUS)
    spec = S.TaskSpec(
        agent=S.AgentSpec(prompt=prompt, **agent), workspace=S.Workspace(path=str(workspace))
    )
    return await client.tasks.CreateTask(
        task_service_pb2.CreateTaskRequest(spec=spec), metadata=client.md
    )


def of(events: list[event_pb2.Event], kind: str) -> list[Any]:
    return [getattr(e, kind) for e in events if e.WhichOneof("payload") == kind]


async def run_to_end(client: Client, task: S.Task) -> list[event_pb2.Event]:
    events = await asyncio.wait_for(client.events(task.id), 60)
    assert events[-1].WhichOneof("payload") == "finished"
    text = str(events)
    assert KEY not in text and SKILL_TOKEN not in text
    return events


def system_text(request: Request) -> str:
    system = request.body.get("system", "")
    if isinstance(system, str):
        return system
    return "".join(block.get("text", "") for block in system)


def skills_stub(client: Client) -> skill_service_pb2_grpc.SkillServiceAsyncStub:
    return skill_service_pb2_grpc.SkillServiceStub(client.channel)


# -- (1) a named skill, disclosed progressively --------------------------------------------


async def test_a_named_skill_is_offered_then_loaded(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    description = "House rules for this repository; use before editing any file."
    folder = user_skill(
        daemon.home,
        "house-rules",
        description,
        f"# House rules\n\n{BODY_MARKER}.",
        domains=["house"],
    )
    api.script(
        reply(tool_use("load_skill", {"name": "house-rules"}, "toolu_skill")),
        reply("Loaded the rules."),
    )
    task = await create_agent(client, "tidy up", tmp_path, skills=["house-rules"])
    events = await run_to_end(client, task)
    assert events[-1].finished.state == S.TASK_STATE_SUCCEEDED, events[-1].finished.result.error
    [chosen] = of(events, "skills_chosen")
    assert list(chosen.names) == ["house-rules"] and list(chosen.left_out) == []
    assert "named by the task" in chosen.reason and chosen.tokens > 0
    # The first prompt: name and description, never the body.
    first, second = api.message_requests
    system = system_text(first)
    assert "house-rules" in system and description in system
    assert BODY_MARKER not in json.dumps(first.body)
    assert "load_skill" in {tool["name"] for tool in first.body["tools"]}
    # Loading it is an event, and the body is the result the model gets next.
    [loaded] = of(events, "skill_loaded")
    assert loaded.name == "house-rules" and loaded.source == str(folder)
    [result] = tool_results(second)
    assert result["tool_use_id"] == "toolu_skill" and not result.get("is_error")
    assert BODY_MARKER in result_text(result)


async def test_a_named_skill_that_does_not_exist_is_left_out(
    client: Client, api: FakeAnthropic, tmp_path: Path
) -> None:
    api.script(reply("nothing to load"))
    task = await create_agent(client, "hello", tmp_path, skills=["nosuch", "debugging"])
    events = await run_to_end(client, task)
    [chosen] = of(events, "skills_chosen")
    assert list(chosen.names) == ["debugging"]
    assert list(chosen.left_out) == ["nosuch: no such skill"]


# -- (2) duplicate names across sources ------------------------------------------------


async def test_a_user_skill_overrides_the_shipped_one(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    mine = user_skill(daemon.home, "python-style", "My own Python style.", "Use tabs.")
    answer = await skills_stub(client).ListSkills(
        skill_service_pb2.ListSkillsRequest(), metadata=client.md
    )
    listed = {skill.name: skill for skill in answer.skills}
    style = listed["python-style"]
    assert style.source == "user" and list(style.overrides) == ["shipped"]
    assert style.path == str(mine) and style.description == "My own Python style."
    assert listed["debugging"].source == "shipped" and list(listed["debugging"].overrides) == []
    got = await skills_stub(client).GetSkill(
        skill_service_pb2.GetSkillRequest(name="python-style"), metadata=client.md
    )
    assert got.body == "Use tabs."
    # The CLI answers from the daemon.
    shown = run_cli(daemon.home, "skills", "list", "--json")
    assert shown.returncode == 0, shown.stderr
    cli_style = next(s for s in json.loads(shown.stdout) if s["name"] == "python-style")
    assert cli_style["source"] == "user" and cli_style["overrides"] == ["shipped"]
    table = run_cli(daemon.home, "skills", "list")
    assert "user (overrides shipped)" in table.stdout
    body = run_cli(daemon.home, "skills", "show", "python-style")
    assert body.returncode == 0 and body.stdout.endswith("\nUse tabs.\n")
    missing = run_cli(daemon.home, "skills", "show", "nosuch")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no skill 'nosuch'")
    # A task naming it gets the user's.
    api.script(reply(tool_use("load_skill", {"name": "python-style"}, "toolu_s")), reply("ok"))
    events = await run_to_end(
        client, await create_agent(client, "x", tmp_path, skills=["python-style"])
    )
    assert of(events, "skill_loaded")[0].source == str(mine)
    assert result_text(tool_results(api.message_requests[1])[0]) == "Use tabs."


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(STIGMER), *args],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in result.stderr
    return result


# -- (3) picked by domains within a tight budget -----------------------------------------------


async def test_selection_under_a_tight_budget(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    # Tags no shipped skill has, so only these three match.
    user_skill(
        daemon.home, "zz-both", "Both tags.", "Both.", domains=["zz-alpha", "zz-beta"], tokens=300
    )
    user_skill(daemon.home, "zz-big", "Alpha, big.", "Big.", domains=["zz-alpha"], tokens=200)
    user_skill(daemon.home, "zz-small", "Alpha, small.", "Small.", domains=["zz-alpha"], tokens=100)
    api.script(reply("done"))
    task = await create_agent(
        client,
        "work",
        tmp_path,
        skill_domains=["zz-alpha", "zz-beta"],
        skill_token_budget=400,
    )
    events = await run_to_end(client, task)
    [chosen] = of(events, "skills_chosen")
    # Most specific first (two shared tags), then the one that still fits.
    assert list(chosen.names) == ["zz-both", "zz-small"]
    assert chosen.tokens == 400 and chosen.budget == 400
    assert list(chosen.left_out) == ["zz-big: over budget (200 tokens)"]
    system = system_text(api.message_requests[0])
    assert "zz-both" in system and "zz-small" in system and "zz-big" not in system


# -- (4) a skill's secret reaches its tools, and nothing else -----------------------------------


async def bash_run(
    client: Client, api: FakeAnthropic, workspace: Path, **agent: Any
) -> tuple[str, str]:
    """What `echo "[$SKILL_TOKEN]"` printed in a task: as the daemon stored it (the
    tool_result event) and as the model got it (the next request's tool_result)."""
    before = len(api.message_requests)
    api.script(
        reply(tool_use("bash", {"command": 'echo "[$SKILL_TOKEN]"'}, "toolu_echo")),
        reply("echoed"),
    )
    task = await create_agent(client, "echo the token", workspace, **agent)
    events = await run_to_end(client, task)
    assert events[-1].finished.state == S.TASK_STATE_SUCCEEDED, events[-1].finished.result.error
    [event] = of(events, "tool_result")
    [result] = tool_results(api.message_requests[before + 1])
    return event.output, result_text(result)


def token_skill(home: Path) -> None:
    user_skill(
        home,
        "token-user",
        "Calls a service that needs SKILL_TOKEN.",
        "Use the token.",
        secrets=["SKILL_TOKEN"],
    )


async def test_a_skill_secret_reaches_its_tools_only(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    token_skill(daemon.home)
    stored, _ = await bash_run(client, api, tmp_path, skills=["token-user"])
    # The value reached the tool (it printed it), and the daemon stored it redacted.
    assert stored.startswith("[[REDACTED]]") and SKILL_TOKEN not in stored
    for agent in ({"skills": ["debugging"]}, {}):
        stored, seen = await bash_run(client, api, tmp_path, **agent)
        assert stored.startswith("[]\n") and seen.startswith("[]\n")


async def test_the_model_never_sees_a_skill_secret(
    client: Client, daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    token_skill(daemon.home)
    _, seen = await bash_run(client, api, tmp_path, skills=["token-user"])
    assert SKILL_TOKEN not in seen and seen.startswith("[[REDACTED]]")
    for request in api.message_requests:
        assert SKILL_TOKEN not in json.dumps(request.body)


async def test_a_skill_secret_that_is_not_set_is_asked_for(
    daemon: Daemon, api: FakeAnthropic, tmp_path: Path
) -> None:
    configure(daemon, api)
    client = await daemon.start(stdin_secrets={"ANTHROPIC_API_KEY": KEY})
    token_skill(daemon.home)
    task = await create_agent(client, "echo", tmp_path, skills=["token-user"])

    async def required() -> event_pb2.SecretRequired | None:
        found = [
            e.secret_required
            for e in await stored_events(client, task.id)
            if e.HasField("secret_required")
        ]
        return found[0] if found else None

    event = await wait_until(required, 20, "the secret_required event")
    assert event.name == "SKILL_TOKEN" and event.needed_by == "skill token-user"
    assert api.message_requests == []  # it never ran
    await client.tasks.CancelTask(
        task_service_pb2.CancelTaskRequest(task_id=task.id), metadata=client.md
    )
    events = await asyncio.wait_for(client.events(task.id), 30)
    assert events[-1].finished.state == S.TASK_STATE_CANCELLED


async def stored_events(client: Client, task_id: str) -> list[event_pb2.Event]:
    """The events stored so far, without waiting for the task to finish."""
    task = await client.get(task_id)
    events: list[event_pb2.Event] = []
    if not task.last_seq:
        return events
    call = client.tasks.WatchTask(
        task_service_pb2.WatchTaskRequest(task_id=task_id), metadata=client.md
    )
    async for batch in call:
        events.extend(batch.events)
        if events[-1].seq >= task.last_seq:
            call.cancel()
            break
    return events


def test_no_stray_environment() -> None:
    # These tests hand the secrets over on the daemon's stdin, never through ours.
    assert "SKILL_TOKEN" not in os.environ
