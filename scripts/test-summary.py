#!/usr/bin/env python3
"""Sums the TRX files of a test run into the line "N passed, N failed, N skipped" and names every skipped test.

Usage: test-summary.py RESULTS_DIR ALLOWED_SKIPS [--ci] [--exit-code N]

Every skipped test is listed with its reason. With --ci (scripts/test.sh passes it when CI=true) a skipped test that
is not on the allow-list counts as failed: CI's green line must not hide a test that did not run. The allow-list has
one test per line, "<fully qualified test name><TAB><why CI may skip it>"; a theory's cases match by the method name.
--exit-code is what the test runs exited with: non-zero with no failed result (a build error, a crashed test host)
still counts as one failure, so the line is never green then. Exits 0 when nothing failed, 1 otherwise. The summary line is always the last line printed.
"""
import glob
import os
import sys
import xml.etree.ElementTree as ET

NS = "{http://microsoft.com/schemas/VisualStudio/TeamTest/2010}"


def allowed_names(path):
    names = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, sep, why = line.partition("\t")
            if not sep or not why.strip():
                sys.exit(f"{path}:{n}: expected '<test name><TAB><why>', got {line!r}")
            names[name.strip()] = why.strip()
    return names


def method_of(test_name):
    """The fully qualified method of a test name: a theory case "Ns.Class.Method(x: 1)" is "Ns.Class.Method"."""
    return test_name.split("(", 1)[0]


def reason_of(result):
    for path in (f"{NS}Output/{NS}ErrorInfo/{NS}Message", f"{NS}Output/{NS}StdOut"):
        el = result.find(path)
        if el is not None and el.text and el.text.strip():
            return " ".join(el.text.split())
    return "(no reason given)"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    results, allow_file, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    ci = "--ci" in rest
    exit_code = int(rest[rest.index("--exit-code") + 1]) if "--exit-code" in rest else 0
    allowed = allowed_names(allow_file)
    passed = failed = 0
    skipped_ok, skipped_bad, failures = [], [], []
    files = sorted(glob.glob(os.path.join(results, "*.trx")))
    for trx in files:
        try:
            root = ET.parse(trx).getroot()
        except ET.ParseError as e:
            failures.append(f"{os.path.basename(trx)}: unreadable TRX ({e})")
            failed += 1
            continue
        counters = root.find(f"{NS}ResultSummary/{NS}Counters")
        if counters is not None:
            # a crashed host or a timeout shows only in the counters, not as a failed result
            failed += sum(int(counters.get(k, "0")) for k in ("error", "timeout", "aborted"))
        for r in root.iter(f"{NS}UnitTestResult"):
            name, outcome = r.get("testName", "?"), r.get("outcome", "?")
            if outcome == "Passed":
                passed += 1
            elif outcome == "NotExecuted":
                entry = (name, reason_of(r))
                (skipped_ok if method_of(name) in allowed or not ci else skipped_bad).append(entry)
            else:
                failed += 1
                failures.append(f"{name}: {outcome}")
    skipped_ok.sort()
    skipped_bad.sort()
    for name, why in skipped_ok:
        print(f"skipped: {name}: {why}")
    for name, why in skipped_bad:
        print(f"skipped but not on {os.path.basename(allow_file)} (counted as failed in CI): {name}: {why}")
    for f in failures:
        print(f"failed: {f}")
    if not files:
        print(f"no test results in {results}")
        failed += 1
    failed += len(skipped_bad)
    if exit_code != 0 and failed == 0:
        print(f"the test runs exited with {exit_code} without a failed result (build error or crashed test host)")
        failed = 1
    print(f"{passed} passed, {failed} failed, {len(skipped_ok)} skipped")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
