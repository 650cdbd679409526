"""CPython's own regression tests, on objmem and on the stock interpreter.

Usage: smoke.py PYTHON LAUNCHER [MODULES_FILE]

Runs the modules listed in smoke.txt (about 40: the memory-relevant ones
and a spread of the rest) with `-m test -j2 --timeout 300 --rerun`, once
under the stock interpreter and once under objmem-python (every domain on
objmem), and fails when a module passes on the stock one and fails on
objmem.  Modules that fail on both (this machine has a few baseline
failures) are reported, not counted.  The tests that need pymalloc itself
are skipped on objmem: expected.txt lists them with the reason.
"""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(python, modules, extra):
    cmd = [python, "-m", "test", "--fromfile", modules, "-j2",
           "--timeout", "300", "--rerun"] + extra
    start = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          errors="replace")
    return proc, time.monotonic() - start


def failed_modules(output):
    """Modules that still fail after the re-run, from regrtest's summary."""
    failed = set()
    # "N tests failed again:" (after --rerun) wins over "N tests failed:".
    blocks = re.split(r"\n(?=\S)", output)
    again = [b for b in blocks if re.match(r"\d+ tests? failed again:", b)]
    first = [b for b in blocks if re.match(r"\d+ tests? failed:", b)]
    rerun_ok = re.search(r"Result: FAILURE then SUCCESS", output)
    for block in again or ([] if rerun_ok else first):
        for line in block.splitlines()[1:]:
            failed.update(line.split())
    return failed


def totals(output):
    m = re.search(r"Total tests: (.*)", output)
    return m.group(1) if m else "?"


def main():
    python, launcher = sys.argv[1], sys.argv[2]
    modules = sys.argv[3] if len(sys.argv) > 3 else os.path.join(
        HERE, "smoke.txt")
    stock, t_stock = run(python, modules, [])
    ours, t_ours = run(launcher, modules,
                       ["--ignorefile", os.path.join(HERE, "expected.txt")])
    f_stock = failed_modules(stock.stdout)
    f_ours = failed_modules(ours.stdout)
    if ours.returncode != 0 and not f_ours:
        f_ours = {"(regrtest exit %d)" % ours.returncode}
    print("stock  python: %5.1f s, %s; failing: %s" % (
        t_stock, totals(stock.stdout), " ".join(sorted(f_stock)) or "none"))
    print("objmem python: %5.1f s, %s; failing: %s" % (
        t_ours, totals(ours.stdout), " ".join(sorted(f_ours)) or "none"))
    regressions = sorted(f_ours - f_stock)
    if regressions:
        print("FAIL on objmem only: " + " ".join(regressions))
        print(ours.stdout[-6000:])
        return 1
    print("no module fails on objmem that passes on the stock interpreter")
    return 0


if __name__ == "__main__":
    sys.exit(main())
