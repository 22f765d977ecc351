"""Benchmark: what the base install pulls (``pip install .``): packages, wheel bytes, licences.

Run:  python bench/bench_install.py [--extras train,batch] [--keep DIR]

``pip download`` of the project with its dependencies into a temporary folder (pip's cache makes
a second run quick), then, for every wheel or sdist other than the project's own: its name, size
and licence from its metadata (License-Expression, License, licence classifiers). Prints the
number of packages, the total bytes, and every package under a GPL licence (LGPL is listed
apart); exit code 1 when the install pulls a GPL package. ``--extras`` measures ``.[extras]``
instead (e.g. to see what ``[jpeg]`` adds).
"""

from __future__ import annotations

import argparse
import email.parser
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT = "refracture_risk"


def _metadata(path: Path) -> str:
    """The METADATA (wheel) or PKG-INFO (sdist) text of a downloaded distribution."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            return z.read(name).decode("utf-8", "replace")
    with tarfile.open(path) as t:
        member = min(
            (m for m in t.getmembers() if m.name.endswith("PKG-INFO")), key=lambda m: len(m.name)
        )
        return t.extractfile(member).read().decode("utf-8", "replace")


def licence(meta_text: str) -> str:
    """The licence a distribution declares, as one short string."""
    meta = email.parser.Parser().parsestr(meta_text, headersonly=True)
    expression = meta.get("License-Expression")
    if expression:
        return expression.strip()
    classifiers = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    if classifiers:
        return "; ".join(classifiers)
    text = (meta.get("License") or "").strip().splitlines()
    return text[0][:60] if text else "unknown"


def is_gpl(lic: str) -> bool:
    """GNU GPL (any version, AGPL included), not LGPL."""
    return bool(re.search(r"(?<![L])\bA?GPL|GNU (Affero )?General Public", lic)) and not re.search(
        r"LGPL|Lesser", lic
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extras", default="", help="comma-separated extras to add (default: none)")
    ap.add_argument("--keep", type=Path, help="download into this folder and keep it")
    args = ap.parse_args(argv)
    target = f"{REPO}[{args.extras}]" if args.extras else str(REPO)
    with tempfile.TemporaryDirectory(prefix="bench_install_") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check"]
        proc = subprocess.run([*cmd, "-d", str(folder), target], capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return 2
        rows = []
        for path in sorted(folder.iterdir()):
            if path.name.lower().replace("-", "_").startswith(PROJECT):
                continue
            name = path.name.split("-")[0]
            rows.append((name, path.stat().st_size, licence(_metadata(path))))
    total = sum(size for _, size, _ in rows)
    print(f"install: pip install {'.[' + args.extras + ']' if args.extras else '.'}")
    for name, size, lic in rows:
        print(f"  {name:<28} {size / 1e6:8.2f} MB  {lic}")
    gpl = [name for name, _, lic in rows if is_gpl(lic)]
    lgpl = [name for name, _, lic in rows if re.search(r"LGPL|Lesser", lic)]
    print(f"packages: {len(rows)}; wheel bytes: {total / 1e6:.1f} MB")
    print(f"GPL packages: {', '.join(gpl) if gpl else 'none'}")
    if lgpl:
        print(f"LGPL packages: {', '.join(lgpl)}")
    return 1 if gpl else 0


if __name__ == "__main__":
    sys.exit(main())
