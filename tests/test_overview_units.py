"""The overview by env without a browser or an engine (opskit.web.overview): a broken
descriptor is one env in error beside the others, each env's last scheduled run comes from
the runs store, the status of a card, and one computation for callers at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from opskit.host import LocalHost
from opskit.plugins import create_plugins
from opskit.runs import RunStore
from opskit.runtime import Runtime
from opskit.web.overview import _Part, last_scheduled_runs, merged


def test_a_broken_descriptor_is_an_error_beside_the_projects_that_read(root_with: Any) -> None:
    root = root_with(
        {
            "good": "name: good\nenvironments: [dev]\n",
            "broken": "name: broken\nenvironments: []\n",
            "twin": "name: good\n",
        }
    )
    runtime = Runtime(str(root), LocalHost(), create_plugins({"OPSKIT_PLUGINS": ""}))
    projects, errors = runtime.readable_projects()
    assert [p.name for p in projects] == ["good"]
    assert runtime.projects() == projects  # the runtime goes on with those that read
    said = sorted(str(e) for e in errors)
    assert said[0].startswith(f"{root}/broken/project.yaml:2: environments: ")
    assert (
        said[1]
        == f"{root}/twin/project.yaml: name: project 'good' is also defined in {root}/good/project.yaml"
    )


def finished(store: RunStore, argv: list[str], project: str, envs: list[str], result: str) -> str:
    run = store.create(argv, "/r", "timer").id
    scheduled = "--scheduled" in argv
    store.append(run, {"event": "job.started", "kind": "backup", "project": project,
                       "envs": envs, "scheduled": scheduled})  # fmt: skip
    store.append(run, {"event": "log", "line": "job.finished is only a word here"})
    store.append(run, {"event": "job.finished", "kind": "backup", "project": project, "envs": envs,
                       "result": result, "error": None if result == "ok" else "disk full",
                       "time": "2026-12-05T03:30:09Z", "seconds": 9.0, "scheduled": scheduled})  # fmt: skip
    store.finish(run, 0 if result == "ok" else 1)
    return run


def test_each_envs_last_scheduled_run_is_the_newest_a_timer_ran(tmp_path: Path) -> None:
    store = RunStore(str(tmp_path / "runs.sqlite"))
    older = finished(store, ["backup", "mdf", "--scheduled"], "mdf", ["dev", "prod"], "ok")
    newer = finished(store, ["backup", "mdf", "--scheduled"], "mdf", ["dev"], "failed")
    finished(store, ["backup", "mdf", "dev"], "mdf", ["dev"], "ok")  # by hand: not a timer's
    found = last_scheduled_runs(store)
    assert found[("mdf", "dev")]["run"] == newer
    assert found[("mdf", "dev")]["result"] == "failed"
    assert found[("mdf", "dev")]["error"] == "disk full"
    assert found[("mdf", "prod")]["run"] == older
    assert ("mdf", "int") not in found


def test_a_cards_status_says_the_worst_of_what_it_knows() -> None:
    running = {"service": "web", "state": "running", "health": "healthy"}
    containers = {
        "engine": None,
        "envs": [
            {"project": "a", "env": "dev", "error": None, "containers": [running]},
            {"project": "a", "env": "prod", "error": None,
             "containers": [{**running, "state": "exited"}]},
            {"project": "b", "env": "dev", "error": None, "containers": [running]},
            {"project": "c", "env": "", "error": "[error] c/project.yaml: …", "containers": []},
            {"project": "d", "env": "dev", "error": None, "containers": [running]},
        ],
    }  # fmt: skip
    check = {"name": "http", "ok": True, "detail": "HTTP 200"}
    checked = {
        "envs": {
            "a dev": {"checks": [check]},
            "a prod": {"checks": [check]},
            "b dev": {"checks": [{**check, "ok": False}]},
        }
    }
    status = {(e["project"], e["env"]): e["status"] for e in merged(containers, checked)}
    assert status == {("a", "dev"): "ok", ("a", "prod"): "failing", ("b", "dev"): "failing",
                      ("c", ""): "error", ("d", "dev"): "checking"}  # fmt: skip
    down = {**containers, "engine": "cannot reach the Docker engine (local)"}
    assert {e["status"] for e in merged(down, checked)} == {"error"}


def test_callers_at_once_get_one_computation_and_a_change_computes_again() -> None:
    computed: list[int] = []

    def compute() -> dict[str, Any]:
        computed.append(1)
        time.sleep(0.2)
        return {"n": len(computed)}

    part = _Part(compute, seconds=60)
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(part.get(1))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(computed) == 1 and results == [{"n": 1}] * 8
    assert part.get(1) == {"n": 1}  # the same change: kept
    assert part.get(2) == {"n": 2} and part.computed == 2  # a change: computed again
