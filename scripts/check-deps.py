#!/usr/bin/env python3
"""
check-deps.py - the dependency rules of the tree, checked from the sources.

  edge/, spawner/, culler/   include common/ only (and their own headers),
                             never <microhttpd.h>
  common/                    includes nothing of the project but itself
  hub/ web                   the files in WEB below (web.h: libmicrohttpd,
                             pages, API)
  hub/ core                  every other hub/*.c (main.c, the composition
                             root that wires both, aside): no web.h, no
                             <microhttpd.h>, no call into a web file
  hub/                       no circle among its files: file A depends on
                             file B when A names a function B defines
                             (a call, or a pointer to it)

Function definitions are found by the style's shape (the name at the start
of a line, followed by '('), calls by the names after comments and strings
are removed. Prints each violation and exits 1; "check-deps: ok" else.
Usage: scripts/check-deps.py [ROOT]
"""
import re
import sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
LEAVES = ("edge", "spawner", "culler")
WEB = {"http.c", "router.c", "api.c", "api_admin.c", "oauth.c", "pages.c",
       "pages_spawn.c", "pages_admin.c", "pages_nodes.c", "assets.c",
       "events.c", "agent.c", "api_images.c"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
DEFINE = re.compile(r"^([A-Za-z_]\w*)\(", re.M)
NAME = re.compile(r"\b([A-Za-z_]\w*)\b")


def strip(src):
    """C source without comments, string and character literals."""
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"//[^\n]*", " ", src)
    src = re.sub(r'"(\\.|[^"\\\n])*"', '""', src)
    return re.sub(r"'(\\.|[^'\\\n])*'", "''", src)


def includes(path):
    return INCLUDE.findall(path.read_text(errors="replace"))


def check_includes(errors):
    for d in LEAVES + ("common",):
        for f in sorted((ROOT / d).glob("*.[ch]")):
            for kind, inc in includes(f):
                if kind == "<":
                    if "microhttpd" in inc:
                        errors.append(f"{f.relative_to(ROOT)}: includes "
                                      f"<{inc}>")
                    continue
                target = (f.parent / inc).resolve()
                allowed = {ROOT / d} if d == "common" else \
                    {ROOT / d, ROOT / "common"}
                if target.parent not in allowed:
                    errors.append(f"{f.relative_to(ROOT)}: includes "
                                  f"\"{inc}\"")


def hub_files():
    return sorted(p for p in (ROOT / "hub").glob("*.c"))


def is_web(f):
    return f.name in WEB


def check_hub(errors):
    files = hub_files()
    texts = {f: strip(f.read_text(errors="replace")) for f in files}
    web = {f for f in files if is_web(f)}
    root = {f for f in files if f.name == "main.c"}
    owner = {}
    for f, t in texts.items():
        for m in DEFINE.finditer(t):
            line_start = t.rfind("\n", 0, m.start() - 1)
            prev = t[line_start + 1:m.start()]
            if "static" in prev:
                continue
            owner.setdefault(m.group(1), f)
    deps = {f: set() for f in files}
    for f, t in texts.items():
        for name in set(NAME.findall(t)):
            g = owner.get(name)
            if g is not None and g != f:
                deps[f].add(g)
    for f in files:
        if f in web or f in root:
            continue
        for kind, inc in includes(f):
            if inc == "web.h" or "microhttpd" in inc:
                errors.append(f"hub/{f.name}: a core file includes {inc}")
        for g in sorted(deps[f] & web):
            names = sorted(n for n, o in owner.items()
                           if o == g and re.search(r"\b%s\b" % n, texts[f]))
            errors.append(f"hub/{f.name} (core) calls web file hub/{g.name}:"
                          f" {', '.join(names[:4])}")
    for comp in cycles(files, deps):
        errors.append("circle among hub files: " +
                      " -> ".join(f"hub/{f.name}" for f in comp))


def cycles(nodes, deps):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(deps[v]):
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

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def main():
    errors = []
    check_includes(errors)
    check_hub(errors)
    for e in errors:
        print("check-deps: " + e)
    if errors:
        print(f"check-deps: {len(errors)} violation(s)")
        return 1
    print("check-deps: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
