#!/usr/bin/env python3
"""Reproduces every bundled zoo entry's listed metrics.

For each bundled entry of `sslzoo list --json`, runs each metric's own
command (the one the manifest records, with --json) and checks that its
top-1 lies within --tolerance points of the listed figure. Prints one line
per metric and exits 1 if any is off. Python's standard library only.

usage: /usr/bin/python3 scripts/verify_zoo.py [--tolerance 0.3] [--only NAME]
       (make verify-zoo; after make build; minutes per entry on 2 cores)
"""
import argparse
import json
import os
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tolerance", type=float, default=0.3, help="top-1 points a rerun may differ by")
    ap.add_argument("--only", action="append", default=[], help="check this entry only (repeatable)")
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin", "sslzoo"))
    args = ap.parse_args()
    entries = json.loads(subprocess.run([args.bin, "list", "--json"], check=True, capture_output=True, text=True).stdout)
    bundled = [e for e in entries if e.get("bundled") and (not args.only or e["name"] in args.only)]
    if not bundled:
        sys.exit("verify-zoo: no bundled entry matched")
    bad = 0
    for e in bundled:
        for m in e.get("metrics") or []:
            argv = shlex.split(m["command"])
            if argv[0] != "sslzoo":
                sys.exit(f"verify-zoo: {e['name']}: metric command {m['command']!r} is not an sslzoo command")
            run = subprocess.run([args.bin] + argv[1:] + ["--json"], capture_output=True, text=True)
            if run.returncode != 0:
                print(f"FAIL {e['name']} {m['protocol']}: {run.stderr.strip()}")
                bad += 1
                continue
            got = 100 * json.loads(run.stdout)["top1"]
            ok = abs(got - m["top1"]) <= args.tolerance
            bad += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {e['name']} {m['dataset']} {m['protocol']}: "
                  f"{got:.2f}% (listed {m['top1']:.2f}%, tolerance {args.tolerance}) [{m['command']}]")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
