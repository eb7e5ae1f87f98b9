#!/usr/bin/env python3
"""Keeps docs/architecture.md true to the tree.

    check_architecture.py paths SOURCE_DIR     every path the doc names exists,
                                               and the doc names every .h/.cc
                                               of common/ client/ server/ cli/
    check_architecture.py includes SOURCE_DIR  every #include of ours follows
                                               the dependency rule the doc
                                               states (its "Which room may
                                               include which" table)

A path in the doc is any token like `dir/file.ext` (one slash at least);
`dir/name.{h,cc}` stands for both files, and `*` globs must match at least
one file. Include names of public headers (`shardps/client.h`) resolve to
client/include/shardps/ or common/include/shardps/. Exits 1, listing every
problem, when the doc and the tree disagree.
"""
import glob
import os
import re
import sys

DOC = os.path.join("docs", "architecture.md")
# The rooms whose every source file the doc must place.
COVERED = ("common", "client", "server", "cli")
EXTENSIONS = ("h", "cc", "fbs", "py", "sh", "md", "txt", "toml", "in", "supp",
              "json")
PATH = re.compile(
    r"(?<![\w/.:<-])((?:[A-Za-z0-9_.*-]+/)+[A-Za-z0-9_.*-]*"
    r"(?:\{[a-z,]+\}|\.(?:" + "|".join(EXTENSIONS) + r")))(?![\w/])")
PUBLIC_DIRS = ("common/include", "client/include")


def expand(token):
    """`a/b.{h,cc}` -> [`a/b.h`, `a/b.cc`]; anything else -> [token]."""
    m = re.match(r"^(.*)\{([a-z,]+)\}$", token)
    if not m:
        return [token]
    return [m.group(1) + ext for ext in m.group(2).split(",")]


def resolve(root, path):
    """The repository paths `path` names: itself, or a public header."""
    if "*" in path:
        return sorted(os.path.relpath(p, root)
                      for p in glob.glob(os.path.join(root, path)))
    if os.path.exists(os.path.join(root, path)):
        return [path]
    if path.startswith("shardps/"):
        for d in PUBLIC_DIRS:
            if os.path.exists(os.path.join(root, d, path)):
                return [os.path.join(d, path)]
    return []


def check_paths(root):
    with open(os.path.join(root, DOC), encoding="utf-8") as f:
        text = f.read()
    problems = []
    named = set()
    for token in sorted(set(PATH.findall(text))):
        for path in expand(token):
            found = resolve(root, path)
            if not found:
                problems.append(f"{DOC} names {path}, which does not exist")
            named.update(found)
    for room in COVERED:
        for dirpath, _, files in os.walk(os.path.join(root, room)):
            for name in sorted(files):
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                if path not in named:
                    problems.append(f"{DOC} does not say where {path} belongs "
                                    "(add it to its room's table)")
    return problems


# Which rooms a room's files may include (besides its own and system
# headers). "common-public" is common/include/shardps/, "client-public"
# client/include/shardps/; "generated" is protocol_generated.h (flatc's
# output of common/protocol.fbs). Keep in step with docs/architecture.md.
ALLOWED = {
    "common/include": {"common-public"},
    "client/include": {"common-public", "client-public"},
    "common": {"common", "common-public", "generated"},
    "client": {"client", "client-public", "common", "common-public",
               "generated"},
    "server": {"server", "common", "common-public", "generated"},
    "cli": {"cli", "client-public", "common", "common-public", "server",
            "generated"},
    "bench": {"bench", "client-public", "common", "common-public", "server",
              "generated"},
    "fuzz": {"fuzz", "client-public", "common", "common-public", "server",
             "generated"},
    "examples": {"examples", "client-public", "common-public"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)
OURS = ("common/", "client/", "server/", "cli/", "bench/", "fuzz/",
        "examples/", "tests/", "shardps/")


def room_of(path):
    for room in sorted(ALLOWED, key=len, reverse=True):
        if path == room or path.startswith(room + "/"):
            return room
    return None


def included_room(root, name):
    if name == "protocol_generated.h":
        return "generated"
    if name.startswith("shardps/"):
        if os.path.exists(os.path.join(root, "client/include", name)):
            return "client-public"
        if os.path.exists(os.path.join(root, "common/include", name)):
            return "common-public"
        return "unknown public header"
    if not name.startswith(OURS):
        return None  # a system or third-party header
    return name.split("/", 1)[0]


def check_includes(root):
    problems = []
    for room in ALLOWED:
        for dirpath, _, files in os.walk(os.path.join(root, room)):
            for name in sorted(files):
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.relpath(os.path.join(dirpath, name), root)
                if room_of(path) != room:
                    continue  # e.g. client/include/ is its own room
                with open(os.path.join(root, path), encoding="utf-8") as f:
                    text = f.read()
                for included in INCLUDE.findall(text):
                    target = included_room(root, included)
                    if target is not None and target not in ALLOWED[room]:
                        problems.append(f"{path} includes \"{included}\" "
                                        f"({target}), which {room}/ may not")
    return problems


def main(argv):
    if len(argv) != 3 or argv[1] not in ("paths", "includes"):
        sys.stderr.write(__doc__)
        return 2
    root = argv[2]
    problems = (check_paths if argv[1] == "paths" else check_includes)(root)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} problem(s); see docs/architecture.md")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
