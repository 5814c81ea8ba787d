"""Compare two run folders: every HDF5 dataset, every attribute, every JSON file, and the text
of every site page. For refactors that must not change results (issue 24): run the demo
before and after, then

    .venv/bin/python tools/compare_runs.py results/before results/after [--report diff.md]

Datasets are compared bit for bit; those that differ only in how a NaN is encoded (its sign
bit or payload, which no reader sees) or only by the folder each run was made in (absolute
image paths) are listed apart. Attributes and JSON files are compared by value; pages by
their visible text, line by line, and by the JSON they embed. Logs, benchmarks and
Snakemake's own files are left out: they hold times and paths. Exit status 0 when every
dataset holds the same values (attribute and page differences are listed, since a change may
intend them), 1 otherwise.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import h5py
import numpy as np

SKIPPED_FOLDERS = {"logs", "benchmarks", ".snakemake"}


def run_files(run: Path, suffix: str) -> set[str]:
    """Relative paths of the run's files ending in ``suffix``, outside logs and benchmarks."""
    return {
        str(p.relative_to(run))
        for p in run.rglob(f"*{suffix}")
        if p.is_file() and not SKIPPED_FOLDERS & set(p.relative_to(run).parts)
    }


# -- HDF5 --------------------------------------------------------------------------------


def _plain(value):
    """An attribute value in a form that compares by value (arrays to lists, bytes to str)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "OSU" else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit (so NaNs at the same places compare equal); strings by value."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "O":
        return [_plain(x) for x in a.ravel()] == [_plain(x) for x in b.ravel()]
    return a.tobytes() == b.tobytes()


def _why_different(a: np.ndarray, b: np.ndarray, roots: tuple[str, str]) -> str:
    """``bits`` when the arrays hold the same values and differ only in how a NaN is encoded
    (its sign or payload: no reader sees it), ``location`` when their strings differ only by
    the folder each run was made in, else ``values``."""
    if a.shape == b.shape and a.dtype == b.dtype:
        if a.dtype.kind == "f":
            differ = np.frombuffer(a.tobytes(), np.uint8).reshape(a.size, -1) != np.frombuffer(
                b.tobytes(), np.uint8
            ).reshape(b.size, -1)
            where = differ.any(axis=1)
            if np.isnan(a.ravel()[where]).all() and np.isnan(b.ravel()[where]).all():
                return "bits"
        if a.dtype.kind == "O":
            moved = [str(_plain(x)).replace(roots[0], "<root>") for x in a.ravel()]
            if moved == [str(_plain(x)).replace(roots[1], "<root>") for x in b.ravel()]:
                return "location"
    return "values"


def _objects(handle: h5py.File) -> dict[str, h5py.HLObject]:
    found = {"/": handle}
    handle.visititems(lambda name, obj: found.__setitem__("/" + name, obj))
    return found


def compare_h5(before: Path, after: Path, name: str, out: dict, roots: tuple[str, str]) -> None:
    with h5py.File(before, "r") as a, h5py.File(after, "r") as b:
        objs_a, objs_b = _objects(a), _objects(b)
        for path in sorted(objs_a.keys() - objs_b.keys()):
            out["datasets"].append(f"{name}:{path} only before")
        for path in sorted(objs_b.keys() - objs_a.keys()):
            out["datasets"].append(f"{name}:{path} only after")
        for path in sorted(objs_a.keys() & objs_b.keys()):
            oa, ob = objs_a[path], objs_b[path]
            if isinstance(oa, h5py.Dataset) != isinstance(ob, h5py.Dataset):
                out["datasets"].append(f"{name}:{path} is a dataset on one side only")
                continue
            if isinstance(oa, h5py.Dataset):
                out["dataset_count"] += 1
                va, vb = np.asarray(oa[()]), np.asarray(ob[()])
                if not _same_array(va, vb):
                    shapes = f"{oa.dtype}{oa.shape} vs {ob.dtype}{ob.shape}"
                    kind = {"values": "datasets", "bits": "nan_bits", "location": "located"}
                    out[kind[_why_different(va, vb, roots)]].append(f"{name}:{path} differs ({shapes})")
            compare_attributes(dict(oa.attrs), dict(ob.attrs), f"{name}:{path}", out)


def compare_attributes(attrs_a: dict, attrs_b: dict, where: str, out: dict) -> None:
    for key in sorted(attrs_a.keys() | attrs_b.keys()):
        va = _plain(attrs_a[key]) if key in attrs_a else "<absent>"
        vb = _plain(attrs_b[key]) if key in attrs_b else "<absent>"
        if va != vb:
            out["attributes"].append((where, key, va, vb))


# -- pages -------------------------------------------------------------------------------


class _PageText(HTMLParser):
    """A page's visible text lines, its alt/title/aria-label texts, and its embedded JSON."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.scripts: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag, attrs):
        self._in.append(tag)
        for key, value in attrs:
            if key in ("alt", "title", "aria-label") and value:
                self.lines.append(f"[{key}] {value.strip()}")

    def handle_endtag(self, tag):
        while self._in and self._in.pop() != tag:
            pass

    def handle_data(self, data):
        if self._in and self._in[-1] == "script":
            if data.strip():
                self.scripts.append(data.strip())
        elif not (self._in and self._in[-1] == "style"):
            text = " ".join(data.split())
            if text:
                self.lines.append(text)


def page_text(path: Path) -> _PageText:
    parser = _PageText()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def compare_pages(before: Path, after: Path, name: str, out: dict) -> None:
    pa, pb = page_text(before), page_text(after)
    if pa.lines != pb.lines:
        diff = [
            line
            for line in difflib.unified_diff(pa.lines, pb.lines, lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        out["pages"].append((name, diff))
    if pa.scripts != pb.scripts:
        out["page_scripts"].append(name)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the comparison ----------------------------------------------------------------------


def compare_runs(before: Path, after: Path) -> dict:
    # Image paths are absolute: those inside the checkout that made a run compare relative to it.
    roots = (str(before.resolve().parent.parent), str(after.resolve().parent.parent))
    out = {
        "datasets": [],
        "nan_bits": [],
        "located": [],
        "attributes": [],
        "json": [],
        "pages": [],
        "page_scripts": [],
        "files": [],
        "dataset_count": 0,
        "store_count": 0,
        "page_count": 0,
    }
    for suffix, kind in ((".h5", "store"), (".json", "json"), (".html", "page")):
        names_a, names_b = run_files(before, suffix), run_files(after, suffix)
        for missing in sorted(names_a ^ names_b):
            out["files"].append(f"{missing} only {'before' if missing in names_a else 'after'}")
        for name in sorted(names_a & names_b):
            if kind == "store":
                out["store_count"] += 1
                compare_h5(before / name, after / name, name, out, roots)
            elif kind == "json":
                if json.loads((before / name).read_text()) != json.loads((after / name).read_text()):
                    out["json"].append(name)
            else:
                out["page_count"] += 1
                compare_pages(before / name, after / name, name, out)
    others_a = {str(p.relative_to(before)) for p in (before / "site").rglob("*") if p.is_file()}
    others_b = {str(p.relative_to(after)) for p in (after / "site").rglob("*") if p.is_file()}
    for name in sorted(others_a ^ others_b):
        out["files"].append(f"{name} only {'before' if name in others_a else 'after'}")
    for name in sorted(others_a & others_b):
        if not name.endswith((".html", ".json")) and file_digest(before / name) != file_digest(after / name):
            out["files"].append(f"{name} differs")
    return out


def report(out: dict, before: Path, after: Path, max_lines: int) -> str:
    lines = [f"# {before} vs {after}", ""]
    lines.append(
        f"* {out['store_count']} stores, {out['dataset_count']} datasets compared: "
        f"{len(out['datasets'])} differ"
    )
    for entry in out["datasets"][:max_lines]:
        lines.append(f"  * {entry}")
    lines.append(
        f"* datasets with the same values, differing only in how a NaN is encoded (sign or "
        f"payload): {len(out['nan_bits'])}"
    )
    for entry in out["nan_bits"][:max_lines]:
        lines.append(f"  * {entry}")
    lines.append(
        f"* string datasets differing only by the folder each run was made in: {len(out['located'])}"
    )
    for entry in out["located"][:max_lines]:
        lines.append(f"  * {entry}")
    by_attr = Counter(key for _, key, _, _ in out["attributes"])
    lines.append(
        f"* attributes that differ: {len(out['attributes'])} "
        f"({', '.join(f'{k} x{n}' for k, n in by_attr.most_common())})"
    )
    shown = set()
    for where, key, va, vb in out["attributes"]:
        if key not in shown:
            shown.add(key)
            lines.append(f"  * e.g. {where} `{key}`:")
            lines.append(f"    before: {str(va)[:600]}\n    after:  {str(vb)[:600]}")
    lines.append(f"* JSON files that differ: {len(out['json'])} {out['json'][:max_lines]}")
    lines.append(
        f"* {out['page_count']} pages compared: the text of {len(out['pages'])} differs, "
        f"the embedded JSON of {len(out['page_scripts'])}"
    )
    changed = Counter()
    for _, diff in out["pages"]:
        changed.update(diff)
    lines.append("  * most common changed lines (count: line):")
    for line, count in changed.most_common(max_lines):
        lines.append(f"    * {count}: {line[:200]}")
    lines.append(f"* other site files added, removed or changed: {len(out['files'])}")
    for entry in out["files"][:max_lines]:
        lines.append(f"  * {entry}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=Path, help="the run folder before the change (results/<run>)")
    parser.add_argument("after", type=Path, help="the run folder after the change")
    parser.add_argument("--report", type=Path, help="also write the report to this Markdown file")
    parser.add_argument("--lines", type=int, default=40, help="how many entries of each list to show")
    args = parser.parse_args(argv)
    for run in (args.before, args.after):
        if not (run / "model").is_dir():
            parser.error(f"{run}: not a run folder (no model/ inside)")
    out = compare_runs(args.before, args.after)
    text = report(out, args.before, args.after, args.lines)
    print(text)
    if args.report:
        args.report.write_text(text)
    missing_store = any(".h5 only" in entry for entry in out["files"])
    return 1 if out["datasets"] or missing_store else 0


if __name__ == "__main__":
    sys.exit(main())
