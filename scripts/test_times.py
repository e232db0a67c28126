"""Print each runner's time and the slowest and the hungriest ten tests of a whole run from
its JUnit files (scripts/test.sh writes one per runner to build/test-reports): the figures a
closing note asks for. A test's time is its setup, call and teardown together; its CPU is the
``cpu_seconds`` property tests/conftest.py records (pytest's and its commands' CPU)."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(paths: list[str]) -> None:
    cases: list[tuple[float, float, str, str]] = []
    for path in paths:
        runner = Path(path).stem
        root = ET.parse(path).getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        total = sum(float(suite.get("time", 0)) for suite in suites)
        count = sum(int(suite.get("tests", 0)) for suite in suites)
        cpu_total = 0.0
        for case in root.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            cpu = sum(
                float(prop.get("value", 0))
                for prop in case.iter("property")
                if prop.get("name") == "cpu_seconds"
            )
            cpu_total += cpu
            cases.append((float(case.get("time", 0)), cpu, runner, name))
        print(f"{runner:>8}: {total / 60:5.1f} min, {count} tests, {cpu_total / 60:5.1f} CPU min")
    print("slowest:")
    for seconds, cpu, runner, name in sorted(cases, reverse=True)[:10]:
        print(f"{seconds:8.1f} s {cpu:7.1f} s CPU  {runner:>8}  {name}")
    print("hungriest:")
    for seconds, cpu, runner, name in sorted(cases, key=lambda c: -c[1])[:10]:
        print(f"{seconds:8.1f} s {cpu:7.1f} s CPU  {runner:>8}  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
