"""The comparison site: ``results/<compare run>/site/``, a static site of its own for a
comparison store (``compare.h5``) and its member runs (README "Compare models",
docs/FRONTEND.md "The comparison site").

Pages (templates ``site/templates/compare-*.html``, over the run site's ``_base.html``, CSS
and ``common.js``):

* ``index.html``: the CKA heatmap of each pair of runs, a table of the first run's layers
  (rows) against the second's (columns); every matched layer pair's cell links to its page;
* ``pairs/<run A>/<run B>/<layer A>--<layer B>.html``: the layer pair's one-to-one matched
  units side by side (feature visualizations, top dataset examples, labels, correlation;
  ``compare.js`` sorts the table), then each run's unmatched units;
* ``channels/<run>/<layer>/<c>.html``: one channel of a matched layer with its closest units
  in the other run's partner layers (the best correlations ``compare.h5`` keeps).

The site is self-contained (its images are copied in, links are relative), opens from
``file://`` and embeds no data a script must fetch. The member runs are read through the
run site's adapter (:func:`pipeline.site.reader.from_results`): whatever a member has
(feature visualizations, labels) shows; a layer without visualizations shows examples only
and says so. No torch here.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pipeline.search import Entry, index_json
from pipeline.site import search_index
from pipeline.site.build import (
    MARKER,
    Urls,
    _check_rgb,
    encode_png,
    replace_site,
    resize,
    template_environment,
)
from pipeline.site.data import AtlasData, Channel, load_image
from pipeline.site.labels import label_short
from pipeline.site.settings import SiteSettings

SITE_SOURCES = Path(__file__).resolve().parents[2] / "site"
# Every page loads the run site's shared scripts; a layer pair's page also compare.js.
PAGE_SCRIPTS = ("common.js", "search.js")
PAIR_SCRIPTS = ("compare.js",)
# Dataset examples shown per unit (the run site's channel pages show 12), written at this
# side in pixels (the stores' crops are larger; a comparison shows thousands of them).
EXAMPLES = 3
EXAMPLE_SIZE = 48


class CompareUrls:
    """Every path of the comparison site, relative to its root."""

    index = "index.html"

    @staticmethod
    def pair(run_a: str, run_b: str, layer_a: str, layer_b: str) -> str:
        return f"pairs/{run_a}/{run_b}/{layer_a}--{layer_b}.html"

    @staticmethod
    def channel(run: str, layer: str, c: int) -> str:
        return f"channels/{run}/{layer}/{int(c)}.html"

    @staticmethod
    def featurevis(run: str, layer: str, c: int) -> str:
        return f"img/{run}/featurevis/{layer}/{int(c)}.png"

    @staticmethod
    def example(run: str, layer: str, c: int, rank: int) -> str:
        return f"img/{run}/examples/{layer}/{int(c)}-{int(rank)}.png"


@dataclasses.dataclass
class _Partner:
    """One matched layer pair as seen from one side: the other run and layer, the page, and
    this side's best matches there (``best`` [C, k] channels, ``corr`` their correlations)."""

    run: str
    layer: str
    page: str
    cka: float
    threshold: float
    best: np.ndarray
    corr: np.ndarray
    matched: np.ndarray


def heat_colour(value: float | None) -> tuple[str, str]:
    """The heatmap's background for a CKA in [0, 1] (white to dark blue) and the text colour
    with the higher contrast on it (black or white: at least 4.58:1 whatever the value)."""
    if value is None or not np.isfinite(value):
        return "#ffffff", "#111111"
    t = float(np.clip(value, 0.0, 1.0))
    low, high = np.array([247, 251, 255]), np.array([8, 48, 107])
    rgb = np.round(low + (high - low) * t).astype(int)
    channel = rgb / 255.0
    linear = np.where(channel <= 0.03928, channel / 12.92, ((channel + 0.055) / 1.055) ** 2.4)
    luminance = float(linear @ [0.2126, 0.7152, 0.0722])
    on_black, on_white = (luminance + 0.05) / 0.05, 1.05 / (luminance + 0.05)
    return "#{:02x}{:02x}{:02x}".format(*rgb), "#000000" if on_black >= on_white else "#ffffff"


def build_comparison_site(
    comparison,
    members: Mapping[str, AtlasData],
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    sources: Path = SITE_SOURCES,
) -> Path:
    """Write the comparison site of ``comparison`` (an open
    :class:`~pipeline.store.compare.CompareStore`) into ``out_dir``; ``members`` maps each
    run name of the store to its :class:`AtlasData` (``from_results`` of its folder)."""
    missing = [m.run for m in comparison.runs if m.run not in members]
    if missing:
        raise ValueError(f"{comparison.path}: no member data given for run(s) {', '.join(missing)}")
    # Built beside it, then swapped in whole, as the run site.
    return replace_site(
        Path(out_dir), lambda partial: _CompareBuilder(comparison, members, partial, title, sources).build()
    )


def run_comparison_site(compare_path, member_dirs: Mapping[str, str | os.PathLike], out_dir) -> Path:
    """The workflow's entry point: read ``compare.h5`` and each member run's folder
    (``member_dirs``: run name -> ``results/<run>``) and write the comparison site."""
    from contextlib import ExitStack

    from pipeline.site.reader import from_results
    from pipeline.store.compare import open_comparison

    # What the pages need of each member: EXAMPLES top examples, no negative examples, no
    # similar channels (the other model's closest units replace them).
    settings = SiteSettings(top_examples=EXAMPLES, negative_examples=0, similar_channels=0)
    with ExitStack() as stack:
        comparison = stack.enter_context(open_comparison(compare_path))
        members = {
            run: stack.enter_context(from_results(path, settings)) for run, path in member_dirs.items()
        }
        return build_comparison_site(comparison, members, out_dir)


class _CompareBuilder:
    def __init__(self, comparison, members, root: Path, title, sources: Path):
        self.comparison, self.members, self.root, self.sources = comparison, members, root, sources
        self.title = title or " vs ".join(m.run for m in comparison.runs)
        self.env = template_environment(sources)
        self.options = SiteSettings()
        self.written: dict[tuple[str, str, int], dict] = {}  # (run, layer, c) -> its images
        self.partners: dict[tuple[str, str], list[_Partner]] = {}  # (run, layer) -> partners

    # -- files ------------------------------------------------------------------------
    def write(self, path: str, content: bytes | str) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)

    def page(self, path: str, template: str, *, scripts: tuple[str, ...] = (), **context) -> None:
        def link(target):
            return Urls.href(path, target)

        site = {"title": self.title, "model": {"name": self.title}, "layers": []}
        html = self.env.get_template(template).render(
            page=path,
            link=link,
            data=site,
            options=self.options,
            css=link(Urls.static("atlas.css")),
            scripts=[link(Urls.static(name)) for name in (*PAGE_SCRIPTS, *scripts)],
            home=link(CompareUrls.index),
            shortcuts=[{"key": "/", "label": "/", "what": "search", "href": "#site-search-box"}],
            search_index=link(search_index.PATH),
            root="../" * path.count("/"),
            **context,
        )
        self.write(path, html)

    def unit(self, run: str, layer: str, c: int) -> dict:
        """A unit as the pages show it (its images written once): the channel page, the
        feature visualization's thumbnail (None: not rendered), the examples, the label."""
        key = (run, layer, int(c))
        if key in self.written:
            return self.written[key]
        channel: Channel = self.members[run].layer(layer).units[int(c)]
        fv = load_image(channel.featurevis)
        if fv is not None:
            _check_rgb(fv, f"feature visualization of {run} {layer}:{c}")
            fv_path = self.png(CompareUrls.featurevis(run, layer, c), resize(fv, self.options.thumbnail_size))
        else:
            fv_path = None
        examples = []
        firing = [e for e in channel.examples if e.activation is not None and e.activation > 0]
        for rank, example in enumerate(firing[:EXAMPLES]):
            crop = load_image(example.crop)
            if crop is not None:
                path = self.png(CompareUrls.example(run, layer, c, rank), resize(crop, EXAMPLE_SIZE))
                examples.append({"path": path, "image_id": example.image_id, "value": example.activation})
        found = {
            "run": run,
            "layer": layer,
            "channel": int(c),
            "page": CompareUrls.channel(run, layer, c),
            "featurevis": fv_path,
            "examples": examples,
            "label": channel.label,
        }
        self.written[key] = found
        return found

    def png(self, path: str, array: np.ndarray) -> str:
        self.write(path, encode_png(np.ascontiguousarray(array)))
        return path

    # -- pages --------------------------------------------------------------------------
    def build(self) -> None:
        self.write(MARKER, "model-atlas comparison site\n")
        for name in sorted(os.listdir(self.sources / "static")):
            self.write(Urls.static(name), (self.sources / "static" / name).read_bytes())
        heatmaps = []
        for run_a, run_b in self.comparison.pairs():
            table = self.comparison.cka(run_a, run_b)
            matched = self.comparison.layer_pairs(run_a, run_b)
            for layer_a, layer_b in matched:
                self._pair_page(run_a, run_b, layer_a, layer_b)
            heatmaps.append(self._heatmap(table, set(matched)))
        for (run, layer), partners in self.partners.items():
            for c in range(self.members[run].layer(layer).channels):
                self._channel_page(run, layer, c, partners)
        self.write(search_index.PATH, search_index.script_text(index_json(self._search_entries())))
        self.page(CompareUrls.index, "compare-index.html", heatmaps=heatmaps, runs=self.comparison.runs)

    def _heatmap(self, table, matched: set) -> dict:
        rows = []
        for i, layer_a in enumerate(table.layers_a):
            cells = []
            for j, layer_b in enumerate(table.layers_b):
                value = float(table.values[i, j])
                background, ink = heat_colour(value)
                page = CompareUrls.pair(table.run_a, table.run_b, layer_a, layer_b)
                cells.append(
                    {
                        "layer_b": layer_b,
                        "value": value,
                        "background": background,
                        "ink": ink,
                        "page": page if (layer_a, layer_b) in matched else None,
                    }
                )
            rows.append({"layer_a": layer_a, "cells": cells})
        return {"run_a": table.run_a, "run_b": table.run_b, "layers_b": list(table.layers_b), "rows": rows}

    def _pair_page(self, run_a: str, run_b: str, layer_a: str, layer_b: str) -> None:
        found = self.comparison.matches(layer_a, layer_b, run_a, run_b)
        page = CompareUrls.pair(run_a, run_b, layer_a, layer_b)
        self.partners.setdefault((run_a, layer_a), []).append(
            _Partner(
                run_b,
                layer_b,
                page,
                found.cka,
                found.threshold,
                found.best_a,
                found.best_a_corr,
                found.matched_a,
            )
        )
        self.partners.setdefault((run_b, layer_b), []).append(
            _Partner(
                run_a,
                layer_a,
                page,
                found.cka,
                found.threshold,
                found.best_b,
                found.best_b_corr,
                found.matched_b,
            )
        )
        order = np.argsort(-np.nan_to_num(found.pair_corr, nan=-2.0), kind="stable")
        rows = []
        for i in order:
            a, b = (int(x) for x in found.pairs[i])
            rows.append(
                {
                    "a": self.unit(run_a, layer_a, a),
                    "b": self.unit(run_b, layer_b, b),
                    "corr": float(found.pair_corr[i]),
                    "buddies": int(found.buddies_a[a]) == b,
                    "matched": bool(found.matched_a[a] and found.matched_b[b]),
                }
            )
        unmatched = self._unmatched(run_a, run_b, found)
        rendered = {side: any(u["featurevis"] for u in (r[side] for r in rows)) for side in ("a", "b")}
        self.page(
            page,
            "compare-pair.html",
            scripts=PAIR_SCRIPTS,
            run_a=run_a,
            run_b=run_b,
            layer_a=layer_a,
            layer_b=layer_b,
            found=found,
            summary=found.summary(),
            rows=rows,
            unmatched=unmatched,
            rendered=rendered,
        )

    def _unmatched(self, run_a: str, run_b: str, found) -> dict[str, list[dict]]:
        """Each side's units with no match above the threshold, with their best correlation."""
        layer_a, layer_b = found.layer_a, found.layer_b
        return {
            side: [
                {"unit": self.unit(run, layer, c), "best": int(best[c, 0]), "corr": float(corr[c, 0])}
                for c in np.flatnonzero(~flags)
            ]
            for side, run, layer, flags, best, corr in (
                ("a", run_a, layer_a, found.matched_a, found.best_a, found.best_a_corr),
                ("b", run_b, layer_b, found.matched_b, found.best_b, found.best_b_corr),
            )
        }

    def _channel_page(self, run: str, layer: str, c: int, partners: list[_Partner]) -> None:
        sections = []
        for partner in partners:
            closest = [
                {"unit": self.unit(partner.run, partner.layer, int(j)), "corr": float(r)}
                for j, r in zip(partner.best[c], partner.corr[c])
                if j >= 0
            ]
            sections.append({"partner": partner, "closest": closest, "matched": bool(partner.matched[c])})
        self.page(
            CompareUrls.channel(run, layer, c),
            "compare-channel.html",
            unit=self.unit(run, layer, c),
            sections=sections,
            run_dir=posixpath.join(run),
        )

    def _search_entries(self) -> list[Entry]:
        entries = []
        for (run, layer), partners in self.partners.items():
            entries.append(
                Entry(
                    "layer", f"{run}/{layer}", url=partners[0].page, detail=f"paired with {partners[0].run}"
                )
            )
        for (run, layer), _ in self.partners.items():
            for c in range(self.members[run].layer(layer).channels):
                unit = self.unit(run, layer, c)
                label = unit["label"]
                entries.append(
                    Entry(
                        "channel",
                        f"{run}/{layer}:{c}",
                        url=unit["page"],
                        thumb=unit["featurevis"],
                        label=label_short(label) if label is not None and label.synset else "",
                    )
                )
        return entries
