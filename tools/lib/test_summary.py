#!/usr/bin/env python3
"""Counts test results of one meson build: every GoogleTest case is one test; a test program that
failed without a failing case (a crash, a sanitizer abort, a timeout) counts as one failure.
Skipped cases count as failures: a skipped check is not a passed one.
Usage: test_summary.py BUILDDIR LABEL  -> prints 'LABEL: P passed, F failed' and the failures;
the last line of stdout is 'P F'."""
import json
import sys
import xml.etree.ElementTree as ET

build, label = sys.argv[1], sys.argv[2]
passed, failed, names = 0, 0, []
failed_cases_by_test = {}
try:
    root = ET.parse(f"{build}/meson-logs/testlog.junit.xml").getroot()
    for suite in root.iter("testsuite"):
        sname = suite.get("name", "")
        test = sname.rsplit(".", 1)[0]
        for case in suite.iter("testcase"):
            bad = case.find("failure") is not None or case.find("error") is not None \
                or case.find("skipped") is not None or case.get("status") == "notrun"
            if bad:
                failed += 1
                names.append(f"{sname}.{case.get('name')}")
                failed_cases_by_test[test] = failed_cases_by_test.get(test, 0) + 1
            else:
                passed += 1
except (OSError, ET.ParseError):
    pass
try:
    with open(f"{build}/meson-logs/testlog.json") as f:
        for line in f:
            t = json.loads(line)
            if t.get("result") not in ("OK", "EXPECTEDFAIL"):
                key = "mydfs." + t["name"]
                if not failed_cases_by_test.get(key):
                    failed += 1
                    names.append(f"{t['name']} ({t.get('result')})")
except OSError:
    failed += 1
    names.append(f"{label}: no test log")
print(f"{label}: {passed} passed, {failed} failed")
for n in names:
    print(f"  FAILED {n}")
print(passed, failed)
