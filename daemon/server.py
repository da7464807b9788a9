"""Wires the daemon together and runs it until a signal or a Shutdown call."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from importlib.metadata import PackageNotFoundError, version

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from daemon import eventcodec, retention
from daemon.api.daemon_service import DaemonInfo, DaemonService
from daemon.api.event_service import EventService
from daemon.api.interceptor import AuthInterceptor
from daemon.api.runner_service import RunnerService
from daemon.api.secret_service import SecretService
from daemon.api.skill_service import SkillService
from daemon.api.task_service import TaskService
from daemon.api.worker_service import WorkerService
from daemon.approvals import Approvals
from daemon.audit import AuditTrail
from daemon.bus import Bus
from daemon.claims import Planner
from daemon.config import Config
from daemon.diskspace import SpaceGuard
from daemon.model import Task, TaskResult
from daemon.notify import Completion, Notifier
from daemon.secrets import Secrets
from daemon.store import Store
from daemon.supervision.journal import Journal
from daemon.supervision.supervisor import Supervisor, Transition
from daemon.tasks import TaskManager
from daemon.workspaces import Workspaces
from protos import (
    daemon_service_pb2,
    daemon_service_pb2_grpc,
    event_service_pb2,
    event_service_pb2_grpc,
    runner_service_pb2,
    runner_service_pb2_grpc,
    secret_service_pb2,
    secret_service_pb2_grpc,
    skill_service_pb2,
    skill_service_pb2_grpc,
    task_service_pb2,
    task_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)
from shared import auth
from shared.paths import Paths
from shared.redact import Redactor
from shared.secretstore import SecretStore

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def package_version() -> str:
    try:
        return version("stigmer-local")
    except PackageNotFoundError:
        return "0+unknown"


def _service_names() -> list[str]:
    modules = (
        task_service_pb2,
        event_service_pb2,
        runner_service_pb2,
        secret_service_pb2,
        skill_service_pb2,
        daemon_service_pb2,
        worker_service_pb2,
    )
    names = [s.full_name for m in modules for s in m.DESCRIPTOR.services_by_name.values()]
    return [
        *names,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ]


def completion(task: Task) -> Completion:
    result = task.result or TaskResult()
    return Completion(
        task_id=task.id,
        state=task.state.value,
        summary=result.summary,
        error=result.error,
        exit_code=result.exit_code,
        kind="agent" if task.spec.agent is not None else "command",
        ended_at=task.end_time or 0.0,
        cost_usd=result.cost_usd,
    )


def runner_environment(config: Config) -> dict[str, str]:
    """The daemon's environment as runners inherit it (secrets were taken out at start)."""
    env = dict(os.environ)
    if config.agent.base_url:
        # The anthropic SDK reads it: an Anthropic-compatible local server works too.
        env["ANTHROPIC_BASE_URL"] = config.agent.base_url
    return env


async def _housekeeping(tasks: TaskManager, workspaces: Workspaces) -> None:
    """Timers, not event waits: secret waits expire, old fresh workspaces go."""
    ticks = 0
    while True:
        tasks.expire_blocked()
        if ticks % 600 == 0:
            await workspaces.sweep()
        ticks += 1
        await asyncio.sleep(1.0)


async def serve(
    paths: Paths, config: Config, env_secrets: dict[str, str], redactor: Redactor
) -> None:
    clock = time.time
    started = clock()
    shutdown = asyncio.Event()
    store = Store(paths.database)
    bus = Bus()

    async def secret_changed(name: str) -> None:
        tasks.secret_changed(name)
        # Idle runners restart at once, busy ones after their task.
        await supervisor.restart_running(drain=True)

    notifier = Notifier(config.notify, redactor.text)
    space = SpaceGuard(paths.state_dir, int(config.min_free_mb * 2**20))
    secrets = Secrets(
        SecretStore(paths.config_dir / "secrets.toml", env_secrets),
        redactor,
        config.required_secrets,
        secret_changed,
    )
    tasks = TaskManager(
        store,
        bus,
        paths.workspaces_dir,
        clock,
        secrets.resolve,
        config.secret_wait_seconds,
        Planner(paths.config_dir, clock),
        max_watcher_lag=config.events.max_watcher_lag,
        on_finished=lambda task: notifier.notify(completion(task)),
    )
    audit = AuditTrail(store, clock)
    approvals = Approvals(tasks, audit, clock)
    recovered = tasks.recover()
    if recovered:
        log.warning(
            "settled %d task(s) left running by a daemon that did not stop cleanly", recovered
        )
    token = auth.load_or_create_token(paths.token_file)
    socket_target = f"unix://{paths.socket}"
    journal = Journal(paths.state_dir / "processes.json")
    # Before anything is spawned: what a crashed daemon left must not run on.
    journal.sweep()

    def publish(change: Transition) -> None:
        tasks.runner_event(
            eventcodec.runner_state_changed(
                change.runner_id,
                change.from_state.value,
                change.to_state.value,
                change.pid,
                change.exit_code,
                change.reason,
                clock(),
            )
        )

    supervisor = Supervisor(
        config.runners,
        socket_target,
        paths.log_dir,
        journal,
        config.policy,
        tasks.runner_lost,
        publish,
        tasks.task_of,
        clock,
        secrets.for_runner,
        redactor.data,
        runner_environment(config),
    )

    server = grpc.aio.server(
        interceptors=[AuthInterceptor(token, supervisor.runner_for_token, redactor)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    info = DaemonInfo(
        version=package_version(),
        start_time=started,
        socket_path=str(paths.socket),
        tcp_address=config.tcp_address,
        state_dir=str(paths.state_dir),
        config_path=str(paths.config_file),
        log_path=str(paths.daemon_log),
    )
    task_service_pb2_grpc.add_TaskServiceServicer_to_server(
        TaskService(tasks, config, redactor, approvals, audit, space), server
    )
    worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(
        WorkerService(tasks, supervisor, config, clock, redactor, approvals, audit), server
    )
    daemon_service_pb2_grpc.add_DaemonServiceServicer_to_server(
        DaemonService(info, tasks, supervisor, shutdown, clock, space), server
    )
    runner_service_pb2_grpc.add_RunnerServiceServicer_to_server(RunnerService(supervisor), server)
    event_service_pb2_grpc.add_EventServiceServicer_to_server(EventService(tasks), server)
    secret_service_pb2_grpc.add_SecretServiceServicer_to_server(SecretService(secrets), server)
    skill_service_pb2_grpc.add_SkillServiceServicer_to_server(
        SkillService(paths.config_dir), server
    )
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(_service_names(), server)

    with contextlib.suppress(FileNotFoundError):
        paths.socket.unlink()  # stale: we hold the pid lock, so nobody else serves it
    server.add_insecure_port(socket_target)
    if config.tcp_address:
        try:
            server.add_insecure_port(config.tcp_address)
        except RuntimeError:
            raise StartupError(
                f"cannot listen on {config.tcp_address} (in use?): set [daemon] tcp_address in"
                f' {paths.config_file} to another address, or to "" to turn TCP off'
            ) from None
    await server.start()
    paths.socket.chmod(0o600)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)
    supervisor.start_all()
    workspaces = Workspaces(
        paths.workspaces_dir, store.ended_before, config.workspace_retention_hours * 3600, clock
    )
    housekeeping = asyncio.create_task(_housekeeping(tasks, workspaces))
    # Compacts at start, then every [events] compact_interval_minutes.
    compaction = asyncio.create_task(retention.run(store, config.events, clock))
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving on %s%s (pid file %s)",
        socket_target,
        f" and {config.tcp_address}" if config.tcp_address else "",
        paths.pid_file,
    )

    await shutdown.wait()
    log.info("shutting down")
    housekeeping.cancel()
    compaction.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await compaction
    await health_servicer.enter_graceful_shutdown()
    await supervisor.shutdown()
    await notifier.aclose()
    await server.stop(grace=1.0)
    store.close()
    with contextlib.suppress(FileNotFoundError):
        paths.socket.unlink()
    log.info("stopped")
