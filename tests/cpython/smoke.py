"""CPython's own regression tests, on objmem and on the stock interpreter.

Usage: smoke.py PYTHON LAUNCHER [PRELOAD]

Runs the modules listed in smoke.txt (about 40: the memory-relevant ones
and a spread of the rest) with `-m test -j2 --timeout 300 --rerun`: under
the stock interpreter, under objmem-python (every domain on objmem), and,
given the shim, under the stock interpreter with LD_PRELOAD=PRELOAD and
PYTHONMALLOC=malloc (every allocation through the process's malloc, which
is objmem's).  It fails when a module passes on the stock interpreter and
fails on objmem.  Modules that fail on both (this machine has a few baseline
failures) are reported, not counted.  The tests that need pymalloc itself
are skipped on objmem: expected.txt lists them with the reason.
"""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(python, modules, extra, env=None):
    cmd = [python, "-m", "test", "--fromfile", modules, "-j2",
           "--timeout", "300", "--rerun"] + extra
    start = time.monotonic()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          errors="replace",
                          env=dict(os.environ, **(env or {})))
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
    modules = os.path.join(HERE, "smoke.txt")
    ignore = ["--ignorefile", os.path.join(HERE, "expected.txt")]
    configs = [("objmem-python", launcher, None)]
    if len(sys.argv) > 3:
        configs.append(("python3 on the shim", python,
                        {"LD_PRELOAD": sys.argv[3],
                         "PYTHONMALLOC": "malloc"}))
    stock, t_stock = run(python, modules, [])
    f_stock = failed_modules(stock.stdout)
    print("%-20s %5.1f s, %s; failing: %s" % (
        "stock python3", t_stock, totals(stock.stdout),
        " ".join(sorted(f_stock)) or "none"))
    status = 0
    for name, exe, env in configs:
        ours, t_ours = run(exe, modules, ignore, env)
        f_ours = failed_modules(ours.stdout)
        if ours.returncode != 0 and not f_ours:
            f_ours = {"(regrtest exit %d)" % ours.returncode}
        print("%-20s %5.1f s, %s; failing: %s" % (
            name, t_ours, totals(ours.stdout),
            " ".join(sorted(f_ours)) or "none"))
        regressions = sorted(f_ours - f_stock)
        if regressions:
            print("FAIL with %s only: %s" % (name, " ".join(regressions)))
            print(ours.stdout[-6000:])
            status = 1
    if status == 0:
        print("no module fails on objmem that passes on the stock "
              "interpreter")
    return status


if __name__ == "__main__":
    sys.exit(main())
