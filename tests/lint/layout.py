#!/usr/bin/env python3
"""The layout rules of the tree, checked (ctest: unit.layout).

1. No cycle in the #include graph of lib/ and daemon/: a module is a .c/.h
   pair, and a private header NAME_int.h belongs to module NAME.  Prints the
   graph's size, or each cycle found.
2. No file in daemon/, lib/ or cli/ over 900 lines.

Run on a tree: tests/lint/layout.py [TOP]  (exit 0 when both hold).
"""
import glob
import os
import re
import sys

MAX_LINES = 900


def module(path_or_name):
    return re.sub(r'_int$', '', os.path.splitext(os.path.basename(path_or_name))[0])


def include_graph(top):
    edges = {}
    for f in glob.glob(os.path.join(top, 'lib', '*.[ch]')) + \
            glob.glob(os.path.join(top, 'daemon', '*.[ch]')):
        m = module(f)
        with open(f) as fh:
            for inc in re.findall(r'#include "(\w+)\.h"', fh.read()):
                if module(inc) != m:
                    edges.setdefault(m, set()).add(module(inc))
    return edges


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    nodes = set(edges) | {w for ws in edges.values() for w in ws}
    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return nodes, found


def long_files(top):
    out = []
    for d in ('daemon', 'lib', 'cli'):
        for f in sorted(glob.glob(os.path.join(top, d, '*.[ch]'))):
            with open(f) as fh:
                n = sum(1 for _ in fh)
            if n > MAX_LINES:
                out.append('%s: %d lines' % (os.path.relpath(f, top), n))
    return out


def main():
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..')
    edges = include_graph(top)
    nodes, found = cycles(edges)
    print('include graph of lib/ and daemon/: %d modules, %d edges' %
          (len(nodes), sum(len(v) for v in edges.values())))
    for c in found:
        print('cycle: %s' % ' <-> '.join(c))
    longs = long_files(top)
    for l in longs:
        print('over %d lines: %s' % (MAX_LINES, l))
    return 1 if found or longs else 0


if __name__ == '__main__':
    sys.exit(main())
