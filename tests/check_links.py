#!/usr/bin/env python3
"""Checks the relative links of the project's Markdown files.

    python3 tests/check_links.py [REPO_ROOT]

Scans README.md, docs/ and deploy/ (every *.md, recursively) for inline
links and images, `[text](target)` / `![alt](target)`, and reference
definitions, `[label]: target`. Each relative target must name a file or
directory that exists inside the repository root. Links to http(s)://,
mailto: and pure `#anchor` links are skipped; for `file.md#anchor` only the
file is checked. Code blocks and inline code are ignored. Exits 1 listing
every broken link as `file:line: target (why)`, 0 when all resolve.
Standard library only.
"""

import re
import sys
from pathlib import Path
from urllib.parse import unquote

SKIP_SCHEMES = ("http://", "https://", "mailto:")
# A scheme such as `ftp:` or `file:`; a Windows drive letter is not expected.
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# `](target)` or `](<target>)`, with an optional "title".
INLINE = re.compile(r"\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


def markdown_files(root):
    files = []
    readme = root / "README.md"
    if readme.is_file():
        files.append(readme)
    for folder in ("docs", "deploy"):
        base = root / folder
        if base.is_dir():
            files.extend(sorted(p for p in base.rglob("*.md") if p.is_file()))
    return files


def links(text):
    """(line number, target) of every link outside code."""
    fence = None
    for number, line in enumerate(text.splitlines(), start=1):
        m = FENCE.match(line)
        if m:
            marker = m.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is not None:
            continue
        line = INLINE_CODE.sub("", line)
        for m in INLINE.finditer(line):
            yield number, m.group(1)
        m = REFERENCE.match(line)
        if m:
            yield number, m.group(1)


def problem(root, source, target):
    """Why `target` (linked from `source`) does not resolve, or None."""
    if target.startswith("<") and target.endswith(">"):
        target = target[1:-1].strip()
    if not target or target.startswith("#"):
        return None
    if target.lower().startswith(SKIP_SCHEMES):
        return None
    if SCHEME.match(target):
        return "not a relative link"
    path = unquote(target.split("#", 1)[0].split("?", 1)[0])
    if not path:
        return None
    # A leading `/` is relative to the repository root (as GitHub renders it).
    base = root if path.startswith("/") else source.parent
    resolved = (base / path.lstrip("/")).resolve()
    try:
        resolved.relative_to(root)
    except ValueError:
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    return None


def main(argv):
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
    broken = []
    checked = 0
    for md in markdown_files(root):
        text = md.read_text(encoding="utf-8")
        for number, target in links(text):
            checked += 1
            why = problem(root, md, target)
            if why:
                broken.append(f"{md.relative_to(root)}:{number}: {target} ({why})")
    if broken:
        print(f"{len(broken)} broken link(s) of {checked}:", file=sys.stderr)
        for b in broken:
            print(f"  {b}", file=sys.stderr)
        return 1
    print(f"all {checked} relative link(s) resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
