#!/usr/bin/env python3
"""Totals over every suite: reads meson testlog.json files and pytest JUnit XML
from the directory given, prints per-suite lines and, last, "N passed, N failed".
Exit status 1 if anything failed or a suite produced no result at all."""
import json
import pathlib
import sys
import xml.etree.ElementTree as ET

d = pathlib.Path(sys.argv[1])
passed = failed = skipped = 0
for f in sorted(d.glob('meson-*.json')):
    p = fl = s = 0
    for line in f.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line).get('result')
        if r in ('OK', 'EXPECTEDFAIL'):
            p += 1
        elif r == 'SKIP':
            s += 1
        else:
            fl += 1
    print(f'{f.stem}: {p} passed, {fl} failed, {s} skipped')
    passed, failed, skipped = passed + p, failed + fl, skipped + s
for f in sorted(d.glob('*.xml')):
    root = ET.parse(f).getroot()
    suites = [root] if root.tag == 'testsuite' else list(root)
    p = fl = s = 0
    for ts in suites:
        t = int(ts.get('tests', 0)); e = int(ts.get('errors', 0))
        fa = int(ts.get('failures', 0)); sk = int(ts.get('skipped', 0))
        p += t - e - fa - sk; fl += e + fa; s += sk
    print(f'{f.stem}: {p} passed, {fl} failed, {s} skipped')
    passed, failed, skipped = passed + p, failed + fl, skipped + s
if passed + failed == 0:
    failed = 1
    print('no test results found')
print(f'{passed} passed, {failed} failed, {skipped} skipped')
sys.exit(1 if failed else 0)
