"""The test bed's own helpers: a defect here shows up as a flaky test elsewhere."""

from __future__ import annotations

import pytest

from testroot import free_ports


def test_free_ports_never_hands_out_a_port_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSKIT_TEST_PORTS", "20000-20011")  # 12 ports; some may be in use
    handed: list[int] = []
    with pytest.raises(RuntimeError, match="no 1 free ports between 20000 and 20011"):
        for _ in range(13):
            handed += free_ports(1)
    assert handed and len(handed) == len(set(handed))
    assert all(20000 <= port <= 20011 for port in handed)


def test_the_copys_healthchecks_get_seconds_and_keep_their_intervals() -> None:
    """A check of the examples may take 10 s in the tests' copy (a 2-s timeout under CI
    load rolled a restore back); every interval stays, shop's realistic 30 s among them."""
    import re

    from testroot import EXAMPLES, rewrite

    seen = []
    for path in sorted(EXAMPLES.rglob("*.y*ml")):
        for line in path.read_text().splitlines():
            if "healthcheck:" in line:
                copied = rewrite(line, {})
                assert "timeout: 2s" not in copied and "timeout: 10s" in copied, copied
                interval = re.compile(r"interval: \w+")
                assert interval.findall(copied) == interval.findall(line)
                seen.append(interval.findall(line)[0])
    assert "interval: 30s" in seen and len(seen) >= 10, seen
