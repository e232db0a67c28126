from __future__ import annotations

from typing import Any

from opskit.containers import (
    Container,
    default_compose_project_name,
    managed,
    resolve,
    status,
)
from opskit.descriptor import DescriptorSource, parse_descriptor

MDF = parse_descriptor(
    DescriptorSource(
        "/opt/data/mdf/project.yaml",
        'name: mdf\nenvironments: [dev, prod]\ncontainer_prefix: "{env}-mdf"\ncompose: {dir: "{env}"}\n'
        "services:\n  web: {}\n  db: {}\n  mail: {environments: [prod]}\n",
    )
)
SHOP = parse_descriptor(
    DescriptorSource(
        "/opt/data/shop/project.yaml",
        'name: shop\nenvironments: [dev, prod]\ncompose: {dir: "{env}"}\n',
    )
)
MDF_SHOP = parse_descriptor(
    DescriptorSource(
        "/opt/data/mdfshop/project.yaml",
        'name: mdf-shop\nenvironments: [dev]\ncontainer_prefix: "{env}-mdf-shop"\n',
    )
)


def container(
    name: str,
    labels: dict[str, str] | None = None,
    status: str = "Up 2 minutes",
    state: str = "running",
) -> Container:
    data: dict[str, Any] = {
        "Id": name * 3,
        "Names": [f"/{name}"],
        "Image": "img",
        "State": state,
        "Status": status,
        "Labels": labels or {},
    }
    return Container.from_api(data)


def placed(
    containers: list[Container], projects=(MDF, SHOP)
) -> dict[str, tuple[str, str, str, str | None]]:  # type: ignore[no-untyped-def]
    return {
        p.container.name: (p.project, p.environment, p.service, p.matched_by)
        for p in resolve(list(projects), containers)
        if p.container
    }


def test_labels_come_first() -> None:
    labelled = container(
        "whatever", {"ops.project": "mdf", "ops.environment": "prod", "ops.service": "db"}
    )
    assert placed([labelled]) == {"whatever": ("mdf", "prod", "db", "label")}


def test_label_of_unknown_env_falls_through_to_the_name() -> None:
    c = container("dev-mdf-db", {"ops.project": "mdf", "ops.environment": "stage"})
    assert placed([c]) == {"dev-mdf-db": ("mdf", "dev", "db", "prefix")}


def test_prefix_matches_whole_words_only() -> None:
    found = placed(
        [
            container("dev-mdf-db"),
            container("dev-mdf2-db"),
            container("dev-mdfx"),
            container("dev-mdf_web_1"),
            container("xdev-mdf-db"),
        ]
    )
    assert found == {
        "dev-mdf-db": ("mdf", "dev", "db", "prefix"),
        "dev-mdf_web_1": ("mdf", "dev", "web", "prefix"),
    }


def test_longest_prefix_wins() -> None:
    found = placed(
        [container("dev-mdf-shop-db"), container("dev-mdf-db")], projects=(MDF, MDF_SHOP)
    )
    assert found["dev-mdf-shop-db"] == ("mdf-shop", "dev", "db", "prefix")
    assert found["dev-mdf-db"] == ("mdf", "dev", "db", "prefix")


def test_compose_labels_by_working_dir_then_by_project_name() -> None:
    by_dir = container(
        "prod_web_1",
        {
            "com.docker.compose.project": "prod",
            "com.docker.compose.service": "web",
            "com.docker.compose.project.working_dir": "/opt/data/shop/prod",
        },
    )
    elsewhere = container(
        "prod_api_1",
        {
            "com.docker.compose.project": "prod",
            "com.docker.compose.service": "api",
            "com.docker.compose.project.working_dir": "/srv/other/prod",
        },
    )
    old = container(
        "dev_cache_1", {"com.docker.compose.project": "dev", "com.docker.compose.service": "cache"}
    )
    found = placed([by_dir, elsewhere, old], projects=(SHOP,))
    assert found == {
        "prod_web_1": ("shop", "prod", "web", "compose"),
        "dev_cache_1": ("shop", "dev", "cache", "compose"),
    }


def test_compose_service_label_names_the_service_of_a_prefix_match() -> None:
    c = container("dev-mdf_wordpress_1", {"com.docker.compose.service": "wordpress"})
    assert placed([c]) == {"dev-mdf_wordpress_1": ("mdf", "dev", "wordpress", "prefix")}


def test_health_is_read_from_the_status() -> None:
    assert container("a", status="Up 1 minute (healthy)").health == "healthy"
    assert container("a", status="Up 1 minute (unhealthy)").health == "unhealthy"
    assert container("a", status="Up 3 seconds (health: starting)").health == "starting"
    assert container("a", status="Exited (0) 2 minutes ago", state="exited").health == "none"


def test_status_lists_declared_services_without_a_container_as_missing() -> None:
    rows = status([MDF], [(MDF, "prod")], [container("prod-mdf-web")])
    assert [(r.service, r.state, r.matched_by) for r in rows] == [
        ("db", "missing", None),
        ("mail", "missing", None),
        ("web", "running", "prefix"),
    ]
    dev = status([MDF], [(MDF, "dev")], [])
    assert {r.service for r in dev} == {"web", "db"}  # mail exists only in prod


def test_a_service_name_compose_would_not_take_is_shown_but_ignored() -> None:
    labels = {"ops.project": "mdf", "ops.environment": "prod"}
    strays = [
        container(f"stray{i}", {**labels, "ops.service": service})
        for i, service in enumerate(["-x", "a b", "../x", "db\n", "\x1b[2J"])
    ]
    named = container("prod-mdf-.cache")  # a name docker accepts; its rest is no service
    fine = [container("prod-mdf-web"), container("x", {**labels, "ops.service": "db"})]
    rows = status([MDF], [(MDF, "prod")], [*strays, named, *fine])
    ignored = {r.container.name: r.ignored for r in rows if r.container and r.ignored}
    assert set(ignored) == {c.name for c in strays} | {"prod-mdf-.cache"}
    assert ignored["stray0"] == (
        "container stray0: '-x' (from its ops.service label) is not a service name; "
        "opskit shows the container but never changes it"
    )
    assert "'.cache' (from its name)" in ignored["prod-mdf-.cache"]
    assert [r.as_dict()["ignored"] for r in rows if r.container in fine] == [None, None]
    assert {r.service for r in managed(rows)} == {"db", "mail", "web"}


def test_default_compose_project_name() -> None:
    assert default_compose_project_name("/opt/data/My.Shop/") == "myshop"


def test_a_stack_of_another_root_is_not_claimed_by_its_look_alike_names() -> None:
    """Found with the demo running beside the tests: a second root's project ``mdf`` took
    the demo's ``dev-mdf-db`` by its prefix and a restore tried to stop that service."""
    elsewhere = {
        "com.docker.compose.project": "mdf-dev",
        "com.docker.compose.service": "db",
        "com.docker.compose.project.working_dir": "/srv/other-root/mdf/dev",
        "ops.project": "mdf",
        "ops.environment": "dev",
    }
    here = dict(elsewhere, **{"com.docker.compose.project.working_dir": "/opt/data/mdf/dev"})
    by_hand = container("dev-mdf-cache")  # no compose labels: the prefix still places it
    found = placed([container("dev-mdf-db", elsewhere), container("dev-mdf-web", here), by_hand])
    assert found == {
        "dev-mdf-web": ("mdf", "dev", "db", "label"),
        "dev-mdf-cache": ("mdf", "dev", "cache", "prefix"),
    }
