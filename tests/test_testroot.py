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
