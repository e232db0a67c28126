"""Print each runner's time and the slowest ten tests of a whole run from its JUnit files
(scripts/test.sh writes one per runner to build/test-reports): the figures a closing note
asks for. A test's time is its setup, call and teardown together."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main(paths: list[str]) -> None:
    cases: list[tuple[float, str, str]] = []
    for path in paths:
        runner = Path(path).stem
        root = ET.parse(path).getroot()
        suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
        total = sum(float(suite.get("time", 0)) for suite in suites)
        count = sum(int(suite.get("tests", 0)) for suite in suites)
        print(f"{runner:>8}: {total / 60:5.1f} min, {count} tests")
        for case in root.iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            cases.append((float(case.get("time", 0)), runner, name))
    for seconds, runner, name in sorted(cases, reverse=True)[:10]:
        print(f"{seconds:8.1f} s  {runner:>8}  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
