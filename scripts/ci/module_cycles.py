#!/usr/bin/env python3
"""Fails when modules of one crate import each other in a circle.

For every crate of the workspace (a directory with Cargo.toml and src/), each module file
(src/a.rs or src/a/mod.rs is `a`, src/a/b.rs is `a::b`) is a node, and a path
`crate::a::b::Item` in its text (a `use`, a path) is an edge to the longest module it
names (`a::b`). `use crate::{a, b}` lists count too. Tests (`#[cfg(test)] mod tests` blocks at the end of a file)
are left out: a test may reach across. Prints each circle and exits 1 if there is one.

Usage: scripts/ci/module_cycles.py [ROOT]
"""
import os
import re
import sys

EDGE = re.compile(r"\bcrate::((?:[a-z_][a-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*)")
GROUP = re.compile(r"\bcrate::\{([^}]*)\}")


def strip_tests(text):
    i = text.find("#[cfg(test)]\nmod tests")
    return text if i < 0 else text[:i]


def strip_comments(text):
    return "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))


def crate_graph(src):
    texts = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts[0] == "bin" or parts in (["lib"], ["main"]):
                continue
            with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                texts["::".join(parts)] = strip_comments(strip_tests(fh.read()))
    known = set(texts)

    def target(path):
        segs = path.split("::")
        for n in range(len(segs), 0, -1):
            m = "::".join(segs[:n])
            if m in known:
                return m
        return None

    graph = {}
    for mod, text in texts.items():
        paths = EDGE.findall(text)
        for group in GROUP.findall(text):
            paths += [p.strip() for p in group.split(",")]
        edges = set()
        for p in paths:
            t = target(p)
            # A module reaching into itself or its own children is not an edge.
            if t and t != mod and not t.startswith(mod + "::") and not mod.startswith(t + "::"):
                edges.add(t)
        graph[mod] = edges
    return graph


def circles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    found = False
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("target", ".git", "fuzz", "node_modules")]
        if "Cargo.toml" in files and os.path.isdir(os.path.join(dirpath, "src")):
            src = os.path.join(dirpath, "src")
            graph = crate_graph(src)
            for comp in circles(graph):
                found = True
                print(f"{os.path.relpath(dirpath, root)}: modules in a circle: {', '.join(comp)}")
                for m in comp:
                    for e in sorted(graph[m] & set(comp)):
                        print(f"    {m} -> {e}")
    if found:
        sys.exit(1)
    print("no module circles")


if __name__ == "__main__":
    main()
