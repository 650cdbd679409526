/*
 * workloads.h - the Python workloads that bench_shim and bench_trace both
 * run: five scripts of our own, each a few seconds at most on python3.
 * Header-only (a static const table), so each program has its copy.
 *
 * Each script has one probe line, a comment that starts with "#@ ".
 * Python skips it, so bench_shim runs the script as it reads.
 * bench_trace deletes the "#@ " in its memory runs, which makes the line
 * live: it calls probe(), which bench_trace's prelude defines, at the
 * point where the workload holds the most data live (`point` says
 * where).  Where the data outlives the main loop, that is right after
 * it; churn drops everything each round, so it is inside the last round.
 */
#ifndef OM_WORKLOADS_H
#define OM_WORKLOADS_H

#include <stddef.h>

struct workload {
    const char *name;           /* also the script's name: w_NAME.py */
    const char *script;         /* Python source, with one "#@ " probe */
    const char *point;          /* where the probe is, in words */
};

static const struct workload workloads[] = {
    { "churn",
      "import time\n"
      "for r in range(30):\n"
      "    xs = [(i, i * 2.0, str(i)) for i in range(20000)]\n"
      "    ys = [x for x in xs if x[0] % 3]\n"
      "    zs = {x[2]: x for x in ys}\n"
      "    #@ if r == 29: probe()\n"
      "    del xs, ys, zs\n",
      "last round, before the del" },
    { "dicts",
      "d = {}\n"
      "for i in range(300000):\n"
      "    d['k%d' % i] = {'id': i, 'name': 'n%d' % (i % 1000), 'v': i * 3}\n"
      "#@ probe()\n"
      "total = 0\n"
      "for k in list(d)[::2]:\n"
      "    total += d[k]['v']\n"
      "    del d[k]\n"
      "for i in range(0, 300000, 3):\n"
      "    d.setdefault('k%d' % i, {}).update(x=i)\n"
      "print(total, len(d))\n",
      "after the fill (300k dicts)" },
    { "strings",
      "words = ['w%05d' % i for i in range(50000)]\n"
      "for r in range(8):\n"
      "    text = ' '.join(words)\n"
      "    parts = text.split(' ')\n"
      "    up = [p.upper() + '-' + p[::-1] for p in parts]\n"
      "    s = ','.join(up).replace('W', 'v')\n"
      "    f = ['%s:%d' % (p, len(p)) for p in parts]\n"
      "#@ probe()\n"
      "print(len(s), len(f))\n",
      "after the loop" },
    { "json",
      "import json\n"
      "d = [{'a': i, 'b': str(i) * 10, 'c': [i, i + 1.5, None]}\n"
      "     for i in range(150000)]\n"
      "for r in range(2):\n"
      "    s = json.dumps(d)\n"
      "    d = json.loads(s)\n"
      "#@ probe()\n"
      "print(len(s))\n",
      "after the loop" },
    { "classes",
      "class Particle:\n"
      "    def __init__(self, i):\n"
      "        self.x = float(i); self.y = 0.0; self.vx = 1.0; self.vy = 0.5\n"
      "        self.tag = 'p%d' % i\n"
      "    def step(self, dt):\n"
      "        self.x += self.vx * dt; self.y += self.vy * dt\n"
      "class Slot:\n"
      "    __slots__ = ('a', 'b')\n"
      "    def __init__(self, a, b): self.a = a; self.b = b\n"
      "ps = [Particle(i) for i in range(100000)]\n"
      "for t in range(10):\n"
      "    for p in ps: p.step(0.1)\n"
      "    ps = [p for p in ps if int(p.x) % 7] + "
      "[Particle(i) for i in range(15000)]\n"
      "    links = [Slot(p, t) for p in ps[::3]]\n"
      "#@ probe()\n"
      "print(len(ps), len(links))\n",
      "after the loop" },
};

#define NWORK (sizeof(workloads) / sizeof(workloads[0]))

#endif /* OM_WORKLOADS_H */
