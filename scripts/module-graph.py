#!/usr/bin/env python3
"""Print the graph of imports between the top-level modules of src/ and the cycles in it.

An edge `a -> b` means some file of module `a` (src/a.rs or src/a/**) names `crate::b`
(`use crate::b::...`, `crate::b::f()`, or `b` inside `use crate::{...}`). Only code counts:
comments (`//`, `//!`, `///`) are ignored, `#[cfg(test)]` code is not (tests are code too).
main.rs and lib.rs are the roots, not modules. Usage: scripts/module-graph.py [src-dir]
Exit status: 0 without cycles, 1 with cycles (so CI can hold the graph one-way).
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
src = os.path.normpath(src)

modules = sorted(
    {n[:-3] for n in os.listdir(src) if n.endswith(".rs") and n not in ("lib.rs", "main.rs")}
    | {n for n in os.listdir(src) if os.path.isdir(os.path.join(src, n))}
)


def files_of(mod):
    f = os.path.join(src, mod + ".rs")
    if os.path.isfile(f):
        yield f
    d = os.path.join(src, mod)
    if os.path.isdir(d):
        for root, _, names in os.walk(d):
            for n in sorted(names):
                if n.endswith(".rs"):
                    yield os.path.join(root, n)


def strip_comments(text):
    # Line comments only; a `//` inside a string literal is rare enough in `use` lines.
    out = []
    for line in text.splitlines():
        i = line.find("//")
        out.append(line if i < 0 else line[:i])
    return "\n".join(out)


path_re = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
group_re = re.compile(r"\bcrate::\{([^;]*?)\}\s*;", re.S)


def brace_heads(inner):
    """Top-level names of a `{a, b::c, d::{e, f}}` group."""
    heads, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            heads.append(cur)
            cur = ""
            continue
        if depth == 0:
            cur += ch
    heads.append(cur)
    return [h.strip().split("::")[0].strip() for h in heads if h.strip()]


edges = {m: {} for m in modules}  # from -> {to: [files]}
for m in modules:
    for f in files_of(m):
        with open(f, encoding="utf-8") as fh:
            text = strip_comments(fh.read())
        names = set(path_re.findall(text))
        for g in group_re.findall(text):
            names.update(brace_heads(g))
        for n in names:
            if n in edges and n != m:
                edges[m].setdefault(n, []).append(os.path.relpath(f, src))

print("# module graph: a -> b means a uses crate::b")
for m in modules:
    deps = sorted(edges[m])
    print(f"{m:12} -> {', '.join(deps) if deps else '(none)'}")

# Cycles: strongly connected components (Tarjan), then each 2-cycle named with its files.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def strong(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges[v]:
        if w not in index:
            strong(w)
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
            sccs.append(sorted(comp))


for m in modules:
    if m not in index:
        strong(m)

print()
if not sccs:
    print("# cycles: none")
    sys.exit(0)
print("# cycles (strongly connected groups, then each pair that imports both ways)")
for c in sccs:
    print("group: {" + ", ".join(c) + "}")
for a in modules:
    for b in sorted(edges[a]):
        if a < b and a in edges[b]:
            fa = ", ".join(sorted(set(edges[a][b])))
            fb = ", ".join(sorted(set(edges[b][a])))
            print(f"  {a} <-> {b}:  {a}->{b} in {fa};  {b}->{a} in {fb}")
sys.exit(1)
