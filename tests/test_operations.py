"""The operations layer (unit): one module per command, jobs opened one way, a rollback a
typed result, and Ops the composition root that wires the listeners."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import attrs
import pytest

from opskit import events, gate, jobs
from opskit.api import Ops
from opskit.audit import AuditLog
from opskit.backups import Engine
from opskit.errors import OpskitError, RolledBack
from opskit.notify import Notifier
from opskit.operations import Context
from opskit.runtime import Runtime
from opskit.testing import EventRecorder, plugin_manager

COMMANDS = [
    "backup", "verify", "prune", "drill", "watch", "restore", "sync", "promote", "rebuild",
    "doctor", "timers", "delegate", "extract", "password", "migrate",
]  # fmt: skip


def test_a_job_whose_engine_rolled_back_ends_rolled_back_with_its_error() -> None:
    recorder = EventRecorder()
    bus = jobs.EventBus(plugin_manager(recorder))
    with pytest.raises(RolledBack), jobs.run(bus, "promote", "shop", ["dev", "int"]):
        raise RolledBack("promotion of shop int failed (db: unhealthy); rolled back to abc123")
    assert recorder.results() == [jobs.Outcome.ROLLED_BACK] == ["rolled back"]
    (finished,) = recorder.of(events.JobFinished)
    assert "rolled back to abc123" in (finished.error or "")
    assert isinstance(RolledBack("x"), OpskitError)  # one [error] line and exit 1 in the CLI


def test_an_engine_gets_its_job_at_construction_and_keeps_it(tmp_path: Path) -> None:
    ops = Ops(str(tmp_path))
    with jobs.as_job(ops.runtime, "backup", "shop", ["dev"]) as job:
        engine = Engine(ops.runtime, job=job)
        assert engine.job is job
        with pytest.raises(attrs.exceptions.FrozenAttributeError):
            engine.job = None  # type: ignore[misc]
    assert Engine(ops.runtime).job is None


def test_ops_subscribes_the_audit_log_and_the_notifier_and_the_runtime_builds_neither(
    tmp_path: Path,
) -> None:
    bare = Runtime(str(tmp_path), Ops(str(tmp_path)).host, plugin_manager())
    assert bare.events._subscribers == []
    assert not hasattr(bare, "backup_engine")
    listeners = Ops(str(tmp_path)).runtime.events._subscribers
    assert sorted(type(s).__name__ for s in listeners) == ["AuditLog", "Notifier"]
    assert all(isinstance(s, AuditLog | Notifier) for s in listeners)


def test_each_command_is_a_module_with_run_ctx_request() -> None:
    for name in COMMANDS:
        module = importlib.import_module(f"opskit.operations.{name}")
        assert list(inspect.signature(module.run).parameters) == ["ctx", "request"], name
        assert attrs.has(module.Request), name


def test_a_quiet_context_keeps_the_runtime_and_drops_progress(tmp_path: Path) -> None:
    runtime = Ops(str(tmp_path)).runtime
    ctx = Context(runtime, progress=None, meter=lambda label: lambda count: None)
    assert ctx.quiet() == Context(runtime)


def test_the_gate_loop_has_no_progress_parameter() -> None:
    assert "progress" not in inspect.signature(gate.wait_healthy).parameters
