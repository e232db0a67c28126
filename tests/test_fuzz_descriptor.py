"""No input may make the descriptor loader fail with anything but a DescriptorError."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples
from opskit.descriptor import DescriptorSource, parse_descriptor
from opskit.errors import DescriptorError

REFERENCE = yaml.safe_load((Path(__file__).parent / "data" / "spec-project.yaml").read_text())

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(["dev", "prod", "int", "{env}", "mariadb", "git", "03:30", "http://x/"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def load(text: str) -> None:
    try:
        parse_descriptor(DescriptorSource("/r/p/project.yaml", text))
    except DescriptorError as exc:
        assert str(exc).startswith("/r/p/project.yaml")


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=300))
def test_any_text(text: str) -> None:
    load(text)


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(alphabet="name:{}[]-,'\"&*!|>#%@` \n\t0123456789abcdefv.", max_size=200))
def test_yaml_punctuation(text: str) -> None:
    load(text)


def _paths(data: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, (*prefix, i))
    return found


PATHS = _paths(REFERENCE)[1:]


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=3))
def test_reference_with_fields_replaced(changes: list[tuple[tuple[object, ...], object]]) -> None:
    import copy

    data = copy.deepcopy(REFERENCE)
    for path, value in changes:
        target = data
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    load(yaml.safe_dump(data))


def test_alias_bomb_is_harmless() -> None:
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: &d [*c, *c]\nname: mdf\n"
    load(bomb)
