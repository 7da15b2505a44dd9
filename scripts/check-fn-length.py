#!/usr/bin/env python3
"""No function in src/ over MAX_LINES lines (tests aside).

A function's length is counted from the line of its `fn` keyword to the line
of its closing brace, both included (attributes and doc comments not
counted). Items under `#[cfg(test)]` are skipped, and so are the files of
out-of-line test modules (`#[cfg(test)] mod tests;`).

The scan is a small tokenizer, not a Rust parser: comments, strings (raw
ones too), byte strings and character literals are blanked so that their
braces do not count; lifetimes are told apart from character literals.

Usage: scripts/check-fn-length.py [--max N] [ROOT]   (ROOT defaults to src)
Prints one line per offender and exits 1 if there is any.
"""

import argparse
import os
import re
import sys

MAX_LINES = 80


def blank(text):
    """The text with comments, strings and char literals replaced by spaces
    (newlines kept, so that offsets and line numbers stay the same)."""
    out = list(text)
    i, n = 0, len(text)

    def wipe(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            wipe(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            wipe(i, j)
            i = j
        elif re.match(r'b?r#*"', text[i:i + 260]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'(b?r)(#*)"', text[i:])
            end = '"' + m.group(2)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            wipe(i, j)
            i = j
        elif c == '"' or (c == "b" and text.startswith('b"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            wipe(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}', '{') or a lifetime ('a).
            m = re.match(r"'(\\(u\{[0-9a-fA-F]*\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:i + 12], re.S)
            if m:
                wipe(i, i + len(m.group(0)))
                i += len(m.group(0))
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def match_brace(code, open_at):
    """Offset of the brace closing the one at `open_at`."""
    depth = 0
    for k in range(open_at, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(code) - 1


def item_end(code, start):
    """End offset of the item starting at `start`: its `;` or its block."""
    depth = 0
    for k in range(start, len(code)):
        ch = code[k]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == ";" and depth == 0:
            return k
        elif ch == "{" and depth == 0:
            return match_brace(code, k)
    return len(code) - 1


CFG_TEST = re.compile(r"#\[cfg\(\s*(all\(\s*)?test\b")
FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")
MOD_DECL = re.compile(r"\s*(pub(\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;")


def scan(path, max_lines, skip_files):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    code = blank(text)
    # Spans of #[cfg(test)] items, and out-of-line test modules to skip.
    skipped = []
    for m in CFG_TEST.finditer(code):
        attr_end = code.find("]", m.end())
        j = attr_end + 1
        # Further attributes on the same item.
        while True:
            rest = code[j:]
            stripped = len(rest) - len(rest.lstrip())
            if rest.lstrip().startswith("#["):
                j = code.find("]", j + stripped) + 1
            else:
                break
        decl = MOD_DECL.match(code, j)
        if decl:
            base = os.path.dirname(path)
            stem = os.path.splitext(os.path.basename(path))[0]
            if stem not in ("mod", "lib", "main"):
                base = os.path.join(base, stem)
            name = decl.group(3)
            skip_files.add(os.path.normpath(os.path.join(base, name + ".rs")))
            skip_files.add(os.path.normpath(os.path.join(base, name, "mod.rs")))
        skipped.append((m.start(), item_end(code, j)))
    offenders = []
    for m in FN.finditer(code):
        at = m.start()
        if any(a <= at <= b for a, b in skipped):
            continue
        end = item_end(code, m.end())
        if code[end] != "}":
            continue  # a declaration without a body
        first = code.count("\n", 0, at) + 1
        last = code.count("\n", 0, end) + 1
        length = last - first + 1
        if length > max_lines:
            offenders.append((path, first, m.group(1), length))
    return offenders


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max", type=int, default=MAX_LINES)
    ap.add_argument("root", nargs="?", default="src")
    args = ap.parse_args()
    files = []
    for d, _, names in os.walk(args.root):
        files += [os.path.normpath(os.path.join(d, x)) for x in sorted(names) if x.endswith(".rs")]
    skip_files = set()
    results = {}
    # Parents before children, so that a test module's file is known as such.
    for path in sorted(files, key=lambda p: (p.count(os.sep), p)):
        if path in skip_files:
            continue
        results[path] = scan(path, args.max, skip_files)
    offenders = [o for path in sorted(results) for o in results[path]]
    for path, line, name, length in offenders:
        print(f"{path}:{line}: fn {name} is {length} lines (at most {args.max} outside tests)")
    if offenders:
        print(f"check-fn-length: {len(offenders)} function(s) over {args.max} lines", file=sys.stderr)
        return 1
    print(f"check-fn-length: no function over {args.max} lines in {len(results)} files under {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
