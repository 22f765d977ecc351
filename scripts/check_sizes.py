"""Functions over 60 lines and modules over 400 lines in the library, against an allow-list.

A module should be small enough to read in one sitting and a function short enough to hold in the
head (issue 15). What is still over the limits is listed in :data:`ALLOWED` with its size when it
was listed: an entry may shrink (or go, once under the limit) but not grow, and nothing new may
join. Declarative tables (data, not logic) are allowed to be long and say so.

    python scripts/check_sizes.py           # exit 1 and name every new or grown item
    python scripts/check_sizes.py --list    # every item over the limits, largest first

Sizes are lines from ``def`` (decorators included) to the last line of the body, docstring and
comments included; a module's size is its line count. Nested functions count on their own.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The code the limits apply to (the Slicer module has its own issue; tests and scripts are not
#: held to them).
SCOPE = ("RefractureRiskLib",)
FUNCTION_LIMIT = 60
MODULE_LIMIT = 400

#: Still over the limits: "path" (module lines) or "path::qualified.name" (function lines) -> the
#: size when listed. Lower a number when an item shrinks; delete the entry when it is under.
#: Empty since stop 19: every function and module of the library is within the limits.
ALLOWED: dict[str, int] = {}


def function_sizes(path: Path) -> dict[str, int]:
    """``qualified.name -> lines`` of every function and method in ``path`` over the limit."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                size = child.end_lineno - first + 1
                if size > FUNCTION_LIMIT:
                    found[name] = size
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def oversized(root: Path = ROOT) -> dict[str, int]:
    """Every module over :data:`MODULE_LIMIT` lines and function over :data:`FUNCTION_LIMIT`."""
    items: dict[str, int] = {}
    for folder in SCOPE:
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MODULE_LIMIT:
                items[rel] = lines
            for name, size in function_sizes(path).items():
                items[f"{rel}::{name}"] = size
    return items


def problems(items: dict[str, int], allowed: dict[str, int] = ALLOWED) -> list[str]:
    """New items over a limit, and allow-listed items that grew."""
    out = []
    for key, size in sorted(items.items()):
        if key not in allowed:
            limit = MODULE_LIMIT if "::" not in key else FUNCTION_LIMIT
            out.append(f"{key}: {size} lines (limit {limit}); split it")
        elif size > allowed[key]:
            out.append(f"{key}: grew from {allowed[key]} to {size} lines; split it instead")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list every item over the limits")
    args = parser.parse_args(argv)
    items = oversized()
    if args.list:
        for key, size in sorted(items.items(), key=lambda kv: -kv[1]):
            print(f"{size:5d}  {key}")
        functions = sum("::" in k for k in items)
        print(f"{functions} functions > {FUNCTION_LIMIT} lines, "
              f"{len(items) - functions} modules > {MODULE_LIMIT} lines")  # fmt: skip
        return 0
    found = problems(items)
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
