"""The static site builder on hand-made AtlasData: every page kind, links, escaping,
reproducible bytes, absent stages, most-similar channels, and the adapter over real stores."""

import dataclasses
import hashlib
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from urllib.parse import unquote

import numpy as np
import pytest

from pipeline.extract.similarity import correlation_neighbours
from pipeline.site import data as ad
from pipeline.site import reader as atlas_reader
from pipeline.site.build import EVERY_PAGE_SCRIPTS, PAGE_SCRIPTS, Urls, build_site, json_script
from pipeline.site.image_page import GROUP_COLOURS, groups_overlay
from pipeline.site.settings import SiteSettings
from pipeline.store.blocks import RunHeader
from tests.helpers.images import plant_images
from tests.helpers.provenance import record
from tests.helpers.site import XSS_CLASS, XSS_ID, imagenet_atlas, pattern, site_files, synthetic_atlas
from tests.helpers.stores import CLASSES, LAYERS, build_store
from tests.helpers.workflow import REPO, extract_config, run_on_two_cores

# The run-wide header of the Building Blocks files the adapter tests write ("late" only).
BLOCKS_HEADER = RunHeader(
    model={"name": "fake"},
    class_names=CLASSES,
    layers=[LAYERS[1]],
    settings=record({"layers": ["late"]}),
    model_checksum="sha256:fake",
)


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.scripts = [], []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("href", "src") and value is not None:
                self.links.append((tag, value))


def links_of(html: str) -> list[tuple[str, str]]:
    parser = Links()
    parser.feed(html)
    return parser.links


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(synthetic_atlas(), tmp_path_factory.mktemp("site") / "site")


def test_every_page_kind_exists_under_the_layers_one_name(site):
    files = site_files(site)
    slug = Urls(synthetic_atlas()).image(XSS_ID)
    expected = {
        "index.html",
        "layers/conv.html",
        "layers/mix.a.html",
        "images/img0.html",
        slug,
        "classes/0.html",
        "classes/1.html",
        "static/atlas.css",
        "static/common.js",
        "img/featurevis/conv/1.png",
        "img/featurevis/conv/1-thumb.png",
        "img/featurevis/conv/1-diversity0.png",
        "img/featurevis/conv/1-negative.png",
        "img/images/img0.png",
    }
    expected |= {f"channels/conv/{c}.html" for c in range(4)} | {f"channels/mix.a/{c}.html" for c in range(3)}
    assert expected <= set(files)
    assert not any(name.startswith("channels/conv/4") for name in files)
    assert "classes/2.html" not in files  # "dog" was never predicted: no page
    assert re.fullmatch(r"images/_script_window.__pwned_5__script_-[0-9a-f]{10}\.html", slug)


def test_links_are_relative_and_resolve(site):
    for name, content in site_files(site).items():
        if not name.endswith(".html"):
            continue
        page = site / name
        for _tag, link in links_of(content.decode()):
            assert not re.match(r"^[a-z]+:|^/", link), f"{name}: non-relative link {link}"
            if link.startswith("#"):  # a place on the page itself ("/" search: #site-search-box)
                assert f'id="{link[1:]}"' in content.decode(), f"{name}: no element {link}"
                continue
            target = (page.parent / unquote(link.split("#")[0])).resolve()
            assert target.is_file(), f"{name}: broken link {link}"


def test_data_text_is_escaped_everywhere(site):
    for name, content in site_files(site).items():
        if name.endswith(".html"):
            html = content.decode()
            assert "<img src=x" not in html and "<script>window" not in html, name
            # Only our own kinds of script element: the site's classic scripts and JSON data.
            scripts = {*EVERY_PAGE_SCRIPTS, *(js for kind in PAGE_SCRIPTS.values() for js in kind)}
            ours = [f'<script src="{Urls.href(name, f"static/{js}")}">' for js in scripts]
            for tag in re.findall(r"<script[^>]*>", html):
                assert tag in ours or tag.startswith('<script type="application/json"'), (name, tag)
    index = (site / "index.html").read_text()
    assert "&lt;script&gt;window.__pwned=4&lt;/script&gt;" in index  # the skipped file, as text
    channel = (site / "channels/conv/0.html").read_text()
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;&#34;&gt;&lt;img" in channel


def test_json_embedding_cannot_close_its_script_element():
    text = str(json_script({"name": "</script><!--<script>alert(1)</script>&"}))
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"name": "</script><!--<script>alert(1)</script>&"}


def test_channel_page_content(site):
    html = (site / "channels/conv/1.html").read_text()
    assert 'href="0.html"' in html and 'href="2.html"' in html  # previous / next
    assert "2.5" in html and "1.25" in html  # example activations
    assert html.count("<rect ") == 4  # histogram bins
    # The other visualizations, each labelled with its objective.
    for label in (">neuron<", ">diverse 1<", ">negative<"):
        assert label in html
    assert "neuron feature visualization of conv channel 1: the channel at the centre position" in html
    # Top and most negative examples, each crop with its heat overlay behind a toggle.
    assert "Most negative dataset examples" in html and "-0.5" in html
    assert html.count('class="heat-toggle"') == 2 and html.count('class="heat"') == 2
    assert html.index("conv:2</span>") < html.index("conv:3</span>")  # similar, in order
    assert "a test&#39;s made-up scores" in html
    # Class attribution is signed: bars grow right for and left against, with the sign shown.
    assert '<ol class="bars signed">' in html
    assert 'class="bar for" style="width:50.0%"' in html
    assert 'class="bar against" style="width:16.65%"' in html
    assert "+0.75" in html and "-0.25" in html
    assert "maximum activation per image" in html  # the histogram's axis
    first, last = (site / "channels/conv/0.html").read_text(), (site / "channels/conv/3.html").read_text()
    assert 'rel="prev"' not in first and 'rel="next"' not in last
    no_fv = (site / "channels/mix.a/0.html").read_text()
    assert "Not rendered" not in no_fv


def png_pixels(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def test_an_exact_layers_pages_show_its_filters_and_no_other_layers_do(tmp_path):
    """Filters (stored for layers rendered exactly) appear beside the channel's image,
    enlarged with square pixels and grey = 0, and behind the layer page's tile toggle;
    a layer without filters shows neither."""
    data = synthetic_atlas()
    weights = np.zeros((3, 3, 3), np.float32)
    weights[1, 1] = [2.0, 0.0, -1.0]  # the centre: red +max, blue -max / 2
    for unit in data.layer("conv").units:
        unit.filter = weights
    conv = data.layer("conv")
    conv.featurevis_exact, conv.featurevis_steps, conv.featurevis_size = True, 64, 8
    site = build_site(data, tmp_path / "site")
    html = (site / "channels/conv/1.html").read_text()
    # Its images were computed, not optimised: the page says so, and no preset's steps.
    assert "Computed exactly, not optimised: the layer's output is affine in the image" in html
    assert "Rendered with the" not in html and "Optimised at" not in html
    assert 'src="../../img/featurevis/conv/1-filter.png" width="96" height="96"' in html
    assert "The channel's filter: the weight it gives each input pixel's red, green and blue" in html
    assert "&plusmn;2 per unit of colour" in html and "one input pixel per 32&times;32 square" in html
    picture = png_pixels(site / "img/featurevis/conv/1-filter.png")
    assert picture.shape == (96, 96, 3)
    assert picture[32:64, 32:64].reshape(-1, 3).tolist() == [[255, 128, 64]] * 32 * 32  # 0.5 + 0.5 * w / 2
    assert (picture[:32] == 128).all()  # zero weights: grey
    layer = (site / "layers/conv.html").read_text()
    assert 'data-view="filter"' in layer and layer.count('class="filter-thumb"') == 4
    assert 'data-src="../img/featurevis/conv/3-filter-thumb.png"' in layer
    assert png_pixels(site / "img/featurevis/conv/3-filter-thumb.png").shape == (63, 63, 3)  # 21 px each
    other = (site / "channels/mix.a/1.html").read_text()
    assert "filter.png" not in other and "The channel's filter" not in other
    assert "Computed exactly" not in other
    assert "data-view" not in (site / "layers/mix.a.html").read_text()
    assert not list((site / "img/featurevis/mix.a").glob("*filter*"))


def test_channel_pages_show_circuits_both_ways(site):
    conv = (site / "channels/conv/1.html").read_text()
    feeds = conv[conv.index("<h3>Feeds") :]
    assert '<a href="../../layers/mix.a.html">mix.a</a>' in feeds
    # What it excites (+0.5, linked with its icon) and what it inhibits (-0.25), signed.
    assert 'href="../mix.a/1.html"' in feeds and "+0.5" in feeds
    assert 'href="../mix.a/2.html"' in feeds and "-0.25" in feeds
    assert "The first layer of the atlas" in conv
    mix = (site / "channels/mix.a/2.html").read_text()
    fed = mix[mix.index("<h3>Fed by") : mix.index("<h3>Feeds")]
    assert 'href="../conv/2.html"' in fed and "(same index)" in fed and "(2 here)" in mix
    assert 'alt="feature visualization of conv channel 2"' in fed


def test_overlays_spotlight_where_the_channel_fires(site):
    from PIL import Image

    html = (site / "channels/conv/1.html").read_text()
    heats = re.findall(r'<img class="heat" src="../../(img/assets/[0-9a-f]+\.png)"', html)
    top, negative = (np.asarray(Image.open(site / h)) for h in heats)
    # The map is 2.5 in its top-left quarter, 0 elsewhere: clear there, shaded elsewhere.
    assert top.shape == (4, 4, 4) and (top[..., :3] == 0).all()
    assert (top[:2, :2, 3] == 0).all() and (top[2:, :, 3] == round(0.78 * 255)).all()
    # The negative example's map is -0.5 there: the same spotlight, on its negative part.
    np.testing.assert_array_equal(negative, top)
    # A channel without a negative example has no such section.
    assert "Most negative" not in (site / "channels/conv/2.html").read_text()


def test_a_map_that_never_fires_gets_no_spotlight():
    from pipeline.site.build import heat_overlay

    assert heat_overlay(np.zeros((4, 4))) is None and heat_overlay(np.ones((2, 2)), sign=-1) is None
    half = heat_overlay(np.array([[2.0, 1.0], [0.0, -3.0]]))
    assert half[..., 3].tolist() == [[0, 99], [199, 199]]


def test_layer_pages_link_their_neighbours(site):
    conv, mix = (site / "layers/conv.html").read_text(), (site / "layers/mix.a.html").read_text()
    assert '<a rel="next" href="mix.a.html">mix.a &rarr;</a>' in conv and 'rel="prev"' not in conv
    assert '<a rel="prev" href="conv.html">&larr; conv</a>' in mix and 'rel="next"' not in mix


def test_layer_page_has_sort_keys_and_deferred_thumbnails(site):
    html = (site / "layers/conv.html").read_text()
    cells = re.findall(r'<li data-channel="(\d+)" data-mean="([^"]*)" data-attr="([^"]*)"[ >]', html)
    assert cells == [("0", "0.0", "-0.5"), ("1", "3.0", "0.5"), ("2", "2.0", "-0.5"), ("3", "1.0", "0.5")]
    assert (
        html.count('data-src="../img/featurevis/conv/') == 4
        and " src=" not in html.split('id="channels"')[1].split("</ol>")[0]
    )
    mix = (site / "layers/mix.a.html").read_text()
    assert 'data-sort="mean" aria-pressed="false" disabled' in mix  # no statistics there


def test_image_page_embeds_every_layer_on_its_grid_with_classes_and_flows(site):
    html = (site / "images/img0.html").read_text()
    payload = json.loads(
        re.search(r'<script type="application/json" id="blocks-data">(.*?)</script>', html).group(1)
    )
    assert [k["name"] for k in payload["classes"]] == ["cat", XSS_CLASS]
    assert payload["classes"][0]["page"] == "../classes/0.html" and payload["second"] == 1
    conv, mix = payload["layers"]
    assert (conv["name"], conv["gh"], conv["gw"], conv["dictionary"]["k"]) == ("conv", 2, 2, 2)
    assert conv["dictionary"]["channels"][2 * 2 : 2 * 2 + 2] == [2, 0]  # cell (1, 0)
    assert conv["icons"]["3"] == "../img/featurevis/conv/3-thumb.png"
    assert conv["pages"]["3"] == "../channels/conv/3.html"
    assert conv["spatial"] == [[2, 0, 0, 2], [-2, 0, 0, -2]] and conv["total"] == [4, -4]
    assert conv["channel"][1] == [1, 0, -2, 0.25]
    assert conv["groups"]["members"] == [[0], [2, 1]]  # positive weights, largest first
    assert mix["flows"]["source"] == "conv" and (mix["flows"]["gh"], mix["flows"]["gw"]) == (2, 2)
    assert mix["flows"]["cells"][1][3] == [-0.75, -0.8125, -0.875, -0.9375]
    assert mix["flows"]["groups"][0] == [[0.5, 0.25], [-0.125, 0.0625]]
    # Both layers have every view that has data, the same cells in each, and one class picker.
    assert html.count('class="bb-layer"') == 2 and html.count('data-view="grid"') == 1
    assert html.count('data-view="flows"') == 1 and "From conv" in html
    assert html.count('id="explain-class"') == 1 and html.count("<option") == 2 + 3
    assert html.count('class="heat"') == 2 + 2 * 2  # per layer: the groups overlay and each group's map
    for heading in (
        "Semantic dictionary",
        "Activation grid",
        "Attribution",
        "How neuron groups build the decision",
    ):
        assert heading in html


def test_groups_overlay_colours_each_position_by_its_strongest_group():
    maps = np.array([[[2.0, 0.0]], [[1.0, 0.5]]])  # 2 groups on a 1 x 2 map
    rgba = groups_overlay(maps)
    assert rgba.shape == (1, 2, 4) and rgba.dtype == np.uint8
    colour = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in GROUP_COLOURS[:2]]
    assert tuple(rgba[0, 0, :3]) == colour[0] and tuple(rgba[0, 1, :3]) == colour[1]
    assert rgba[0, 0, 3] == 230 and rgba[0, 1, 3] == 115  # opacity: sqrt(value / largest), sqrt(0.25)


def test_same_inputs_give_the_same_bytes(tmp_path, site):
    again = build_site(synthetic_atlas(), tmp_path / "again")
    assert site_files(again) == site_files(site)
    digest = hashlib.sha256(b"".join(site_files(site).values())).hexdigest()
    assert digest == hashlib.sha256(b"".join(site_files(again).values())).hexdigest()


def test_rebuild_replaces_a_site_but_refuses_other_folders(tmp_path):
    out = build_site(synthetic_atlas(), tmp_path / "site")
    (out / "stale.html").write_text("old")
    build_site(synthetic_atlas(), out)
    assert not (out / "stale.html").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not a model-atlas site"):
        build_site(synthetic_atlas(), other)
    assert (other / "notes.txt").read_text() == "keep"


def test_a_run_with_only_layers_still_gives_every_layer_and_channel_page(tmp_path):
    data = ad.AtlasData(ad.ModelInfo("bare"), [ad.Layer("a", 2), ad.Layer("b", 1)])
    out = build_site(data, tmp_path / "site")
    assert {
        "index.html",
        "layers/a.html",
        "layers/b.html",
        "channels/a/0.html",
        "channels/a/1.html",
        "channels/b/0.html",
    } <= set(site_files(out))
    index = (out / "index.html").read_text()
    assert "extraction stage did not run" in index and "Building Blocks stage did not run" in index
    assert "Not rendered in this run" in (out / "channels/a/0.html").read_text()


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(ValueError, match="'a/b'"):
        ad.AtlasData(ad.ModelInfo("m"), [ad.Layer("a/b", 1)]).normalized()
    with pytest.raises(ValueError, match="layer 'a' appears twice"):
        ad.AtlasData(ad.ModelInfo("m"), [ad.Layer("a", 1), ad.Layer("a", 1)]).normalized()
    bad = ad.AtlasData(
        ad.ModelInfo("m"), [ad.Layer("a", 1, units=[ad.Channel(0, featurevis=np.zeros((4, 4)))])]
    )
    with pytest.raises(ValueError, match="feature visualization of a:0"):
        build_site(bad, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_correlation_neighbours_by_hand():
    base = np.array([0.0, 1.0, 2.0, 5.0])
    maxima = np.stack([base, 2 * base + 1, -base, np.full(4, 3.0), base**2], 1)
    ids, scores = correlation_neighbours(maxima, 3)
    assert ids[0].tolist() == [1, 4, 2] and scores[0, 0] == pytest.approx(1.0)
    assert scores[0, 2] == pytest.approx(-1.0)
    assert ids[3].tolist() == [-1, -1, -1] and np.isnan(scores[3]).all()  # constant: none
    assert 3 not in ids[0]
    ties = correlation_neighbours(np.stack([base, base, base], 1), 2)[0]
    assert ties[2].tolist() == [0, 1]  # ties: lower id first


def fake_blocks(rng, layer="late", channels=2, hw=2, classes=(1, 0), group_target="activations"):
    """One image's Building Blocks as pipeline.blocks.compute_blocks lays them out."""
    t = len(classes)
    return {
        "input": (rng.uniform(0, 255, (8, 8, 3))).astype(np.uint8),
        "predictions": {
            "ids": np.array([1, 0], np.int32),
            "probabilities": np.array([0.75, 0.25], np.float32),
            "logits": np.array([2.0, 1.0], np.float32),
        },
        "classes": {
            "ids": np.array(classes, np.int32),
            "top": classes[0],
            "second": classes[1],
            "second_index": 1,
        },
        "layers": {
            layer: {
                "dictionary": {
                    "channels": np.zeros((hw, hw, 1), np.int32),
                    "values": np.ones((hw, hw, 1), np.float32),
                    "magnitude": np.ones((hw, hw), np.float32),
                },
                "grid": {
                    "icons": rng.integers(0, 255, (hw, hw, 4, 4, 3)).astype(np.uint8),
                    "magnitude": np.ones((hw, hw), np.float32),
                    "vectors": np.ones((hw, hw, channels), np.float32),
                },
                "attribution": {
                    "spatial": np.ones((t, hw, hw), np.float32),
                    "channel": np.ones((t, channels), np.float32),
                    "channel_difference": np.zeros(channels, np.float32),
                    "total": np.ones(t, np.float32),
                },
                "groups": {
                    "maps": np.ones((2, hw, hw), np.float32),
                    "directions": np.ones((2, channels), np.float32),
                    "attribution": np.ones((2, t), np.float32),
                    "icons": np.zeros((2, 4, 4, 3), np.uint8),
                    "relative_error": 0.1,
                    "target": group_target,
                    "shared": False,
                },
            }
        },
    }


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A run folder with all three stores, written by their own writers from known data."""
    from pipeline.store.blocks import merge_files, write_image_file
    from pipeline.store.featurevis import ShardLayout, merge_shards, shard_writer

    tmp_path = tmp_path_factory.mktemp("real_run")
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "layers.json").write_text(
        json.dumps(
            {
                "model": "fake",
                "weights": "random",
                "input_size": 8,
                "aliases": {},
                "layers": [dict(layer, module=layer["name"], index=i) for i, layer in enumerate(LAYERS)],
            }
        )
    )
    _, values, top_ids = build_store(run, k=4)
    rng = np.random.default_rng(0)
    parts = [
        write_image_file(
            tmp_path / f"{i}.h5",
            BLOCKS_HEADER,
            image_id=image_id,
            image_path=f"/photos/{image_id}.jpg",
            blocks=fake_blocks(rng, group_target="gradients"),
        )
        for i, image_id in enumerate(["img03", "img01"])
    ]
    merge_files(parts, run / "blocks.h5")
    shard = tmp_path / "fv-early.h5"
    with shard_writer(
        shard,
        ShardLayout(
            layer="early",
            layer_channels=3,
            channels=[0, 2],
            start=0,
            stop=3,
            image_size=8,
            curve_steps=[0, 1],
            diversity=2,
            negatives=True,
            filter_shape=(3, 3),  # as if "early" were rendered exactly
            tensor="pre-activation",  # "early" ends in a ReLU6
            cap="ReLU6",
            preset="fast",
            schedule={"steps": 64, "image_size": 8},
        ),
        settings=record({"steps": 2}),
    ) as writer:
        writer.write(
            [0, 2],
            {
                "images": np.stack([pattern(0, 8), pattern(2, 8)]),
                "value": [1.0, 2.0],
                "activation": [1.0, 2.0],
                "rank": [2, 1],
                # channel 0's image excites channel 0 less than channel 2's image does
                "responses": [[1.0, 0.0, 0.5], [3.0, 0.0, 2.0]],
                "curve": [[0, 1], [0, 2]],
                "diversity_images": np.stack(
                    [np.stack([pattern(10 + 2 * c + d, 8) for d in range(2)]) for c in (0, 2)]
                ),
                "diversity_activation": [[1, 1], [2, 2]],
                "negative_images": np.stack([pattern(20, 8), pattern(22, 8)]),
                "negative_activation": [-1.0, -2.0],
                "filters": np.stack([np.full((3, 3, 3), c, np.float32) for c in (-1.0, 2.0)]),
            },
        )
    late = tmp_path / "fv-late.h5"
    with shard_writer(
        late,
        ShardLayout(
            layer="late", layer_channels=2, channels=[1], start=0, stop=2, image_size=8, curve_steps=[0, 1]
        ),
        settings=record({"steps": 2}),
    ) as writer:
        writer.write(
            [1],
            {
                "images": pattern(31, 8)[None],
                "value": [1.0],
                "activation": [1.0],
                "rank": [1],
                "curve": [[0, 1]],
            },
        )
    merge_shards([shard, late], run / "featurevis.h5")
    return run, values, top_ids


def test_from_results_reads_the_real_stores(real_run, tmp_path):
    run, values, top_ids = real_run
    with atlas_reader.from_results(run, SiteSettings(top_examples=3, similar_channels=2)) as data:
        assert [layer.name for layer in data.layers] == ["early", "late"]
        assert data.dataset.images == 17 and [s.image_id for s in data.dataset.skipped] == ["broken"]
        assert data.model.class_names == CLASSES and data.model.aliases == {"mixed_early": "early"}
        unit = data.layer("early").units[2]
        assert len(unit.examples) == 3 and unit.examples[0].activation == pytest.approx(
            values["early"]["max"][:, 2].max()
        )
        assert ad.load_image(unit.examples[0].crop).shape == (4, 4, 3)
        assert sum(unit.histogram.counts) == 17
        assert unit.classes and all(k.class_name in CLASSES for k in unit.classes)
        expected, _ = correlation_neighbours(values["early"]["max"], 2)
        assert [s.channel for s in unit.similar] == [c for c in expected[2] if c >= 0]
        assert "17 dataset images" in data.layer("early").similarity_method
        predicted = set(top_ids[:, 0].tolist())
        assert [k.class_id for k in data.classes] == sorted(predicted)
        assert [i.image_id for i in data.images] == ["img01", "img03"]  # sorted
        assert data.images[0].label == "dog" and data.images[1].label == "dog"
        assert data.images[0].layers[0].grid.icons.shape == (2, 2, 4, 4, 3)
        fv = data.layer("early").units
        assert fv[1].featurevis is None and fv[2].featurevis_rank == 1
        assert (fv[0].featurevis_image_rank, fv[2].featurevis_image_rank) == (2, 1)
        assert (data.layer("early").featurevis_preset, data.layer("early").featurevis_steps) == ("fast", 64)
        np.testing.assert_array_equal(ad.load_image(fv[2].featurevis), pattern(2, 8))
        np.testing.assert_array_equal(ad.load_image(fv[2].diversity[1]), pattern(15, 8))
        np.testing.assert_array_equal(ad.load_image(fv[0].negative), pattern(20, 8))
        early, late_layer = data.layer("early"), data.layer("late")
        assert (early.featurevis_tensor, early.cap) == ("pre-activation", "ReLU6")
        assert (late_layer.featurevis_tensor, late_layer.cap) == ("output", None)
        np.testing.assert_array_equal(fv[2].filter, np.full((3, 3, 3), 2.0))
        assert fv[1].filter is None  # not rendered
        late = data.layer("late").units
        assert all(u.filter is None for u in late)  # the store has no filters for "late"
        # Filters are stored only for a layer rendered exactly: "early" was, "late" not.
        assert early.featurevis_exact and not late_layer.featurevis_exact
        assert late[0].featurevis is None and late[1].diversity == [] and late[1].negative is None
        np.testing.assert_array_equal(ad.load_image(late[1].featurevis), pattern(31, 8))
        site = build_site(data, tmp_path / "site")
        exact_page = (site / "channels/early/2.html").read_text()
        early.featurevis_exact = False  # as an optimised pre-activation layer's pages read
        site = build_site(data, tmp_path / "site")
    assert (
        "Computed exactly, not optimised: the layer's pre-activation (before ReLU6) is affine" in exact_page
    )
    assert "(8 px, shown at 2&times; with square pixels)" in exact_page and "Rendered with" not in exact_page
    assert {
        "images/img01.html",
        "channels/early/2.html",
        "layers/late.html",
        "img/featurevis/early/2-negative.png",
        "img/featurevis/early/2-diversity1.png",
    } <= set(site_files(site))
    assert "img/featurevis/early/1.png" not in site_files(site)
    early_page = (site / "channels/early/2.html").read_text()
    assert "Optimised at the pre-activation (before ReLU6)" in early_page and "_pre_relu" in early_page
    assert "by mean pre-activation" in early_page
    made = "Rendered with the <strong>fast</strong> preset: 64 steps at 8 px, shown at 2&times; with square"
    assert made in early_page
    assert 'class="fv" src="../../img/featurevis/early/2.png" width="16" height="16"' in early_page
    assert "this image excites the channel most" in early_page
    assert "1 excite the channel more than this one" in (site / "channels/early/0.html").read_text()
    late_page = (site / "channels/late/1.html").read_text()
    assert "Optimised at the layer's output." in late_page and "pre-activation" not in late_page
    assert "img01" in (site / "index.html").read_text()
    assert "Non-negative factorization of the gradients" in (site / "images" / "img01.html").read_text()


def test_from_results_labels_neuron_groups_from_the_layers_stored_attribution(real_run):
    """The reader's group labels are pipeline.labels.units' on blocks.h5's directions and
    activations.h5's attribution by class of the same layer."""
    from pipeline.labels.rule import LabelSettings
    from pipeline.labels.units import group_labels
    from pipeline.query import open_results

    run, _, _ = real_run
    with open_results(run) as results:
        classes = results.store.classes("late")
        names = list(results.store.class_names)
    tentative = {}
    for settings in (LabelSettings(), LabelSettings(min_images=5)):
        with atlas_reader.from_results(run, labels=settings) as data:
            for image in data.images:
                groups = image.layers[0].groups
                expected = group_labels(
                    groups.directions, classes.attribution, classes.count, names, settings
                )
                assert groups.labels == expected and len(expected) == 2
                tentative[settings.min_images] = groups.labels[0].tentative
    # Group 1 is "dog" from 8 images: tentative below 10, not below 5 (the settings passed).
    assert groups.labels[0].name == "dog" and tentative == {10: True, 5: False}


def test_from_results_labels_groups_with_the_runs_own_label_settings(real_run, tmp_path):
    """With no settings passed, the reader labels groups (and cells) as the run's channel
    labels were made: by the ``labels:`` settings activations.h5 records."""
    import shutil

    from pipeline.labels.rule import LabelSettings

    run = tmp_path / "run"
    shutil.copytree(real_run[0], run)
    (run / "activations.h5").unlink()
    build_store(run, k=4, label_settings=LabelSettings(min_images=5))  # the same data, other settings
    with atlas_reader.from_results(run) as data:
        groups = data.images[0].layers[0].groups
        assert groups.labels[0].name == "dog" and not groups.labels[0].tentative  # 8 images >= 5


def test_site_shows_no_path_of_the_machine_that_ran_the_workflow(tmp_path_factory, tmp_path):
    """Stores record absolute paths (here under a tmp folder, as on a cluster's /scratch);
    pages show them relative to the source root, or the file name, so the site is the
    same whichever folder the run used."""
    from pipeline.store.blocks import merge_files, write_image_file

    elsewhere = tmp_path_factory.mktemp("builder-machine")
    photos, run = elsewhere / "photos", elsewhere / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "layers.json").write_text(
        json.dumps(
            {
                "model": "fake",
                "weights": str(elsewhere / "weights" / "tuned.pth"),
                "input_size": 8,
                "aliases": {},
                "layers": [dict(layer, module=layer["name"], index=i) for i, layer in enumerate(LAYERS)],
            }
        )
    )
    build_store(run, k=2, photos=str(photos))  # ids "img00"; files <photos>/img00.jpg
    rng = np.random.default_rng(0)
    # Featured images as pipeline.images.dataset lists them: the id is the path below the source root.
    parts = [
        write_image_file(
            elsewhere / f"{i}.h5",
            BLOCKS_HEADER,
            image_id=image_id,
            image_path=str(photos / image_id),
            blocks=fake_blocks(rng, group_target="gradients"),
        )
        for i, image_id in enumerate(["cats/tabby.jpg", "dogs/pug.jpg"])
    ]
    merge_files(parts, run / "blocks.h5")
    with atlas_reader.from_results(run, SiteSettings(top_examples=2, similar_channels=1)) as data:
        site = build_site(data, tmp_path / "site")
    files = site_files(site)
    for name, content in files.items():
        assert str(elsewhere).encode() not in content and elsewhere.name.encode() not in content, name
    image = (site / Urls(data).image("cats/tabby.jpg")).read_text()
    assert 'File <code class="file">cats/tabby.jpg</code>' in image
    assert "<code>broken.jpg</code>" in files["index.html"].decode()  # skipped: the file name
    assert "weights tuned.pth" in files["index.html"].decode()
    assert re.search(r'title="img\d\d\.jpg"', files["channels/early/0.html"].decode())


def test_shown_path_is_relative_to_the_source_root_or_the_file_name():
    shown = atlas_reader.shown_path
    assert shown("cat/a.jpg", "/scratch/u/imagenet/cat/a.jpg") == "cat/a.jpg"  # folder sources
    assert shown("./cat/a.jpg", "/data/lists/cat/a.jpg") == "cat/a.jpg"  # manifest row
    assert shown("../elsewhere/a.jpg", "/data/elsewhere/a.jpg") == "a.jpg"  # outside the root
    assert shown("/abs/cat/a.jpg", "/abs/cat/a.jpg") == "a.jpg"  # written absolute
    assert shown("a", "/photos/a.png") == "a.png"  # id is no path
    assert shown("at/a.jpg", "/data/cat/a.jpg") == "a.jpg"  # not a whole part
    assert atlas_reader.shown_weights("/home/me/w/tuned.pth") == "tuned.pth"
    assert atlas_reader.shown_weights("pretrained") == "pretrained"


@pytest.mark.slow
def test_workflow_exports_the_site_from_the_stores(tmp_path):
    """End to end on a tiny model: extraction and its scores (no feature visualization, no
    Building Blocks), then the site rule; its pages come from the stores the run wrote."""
    import yaml

    images = tmp_path / "images"
    plant_images(images)
    cfg = extract_config(images)
    cfg["blocks"] = {"enabled": False}
    cfg["site"] = {"similar_channels": 2, "title": "<b>tiny</b> atlas"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    run_on_two_cores(tmp_path)
    site = tmp_path / "results" / "e2e" / "site"
    files = set(site_files(site))
    assert {
        "index.html",
        "layers/early.html",
        "layers/late.html",
        "channels/early/3.html",
        "channels/late/5.html",
    } <= files
    index = (site / "index.html").read_text()
    assert "&lt;b&gt;tiny&lt;/b&gt; atlas" in index
    assert "5 images extracted, 3 skipped" in index
    assert "<code>cat/empty.jpg</code>" in index  # relative to the source root
    assert not [name for name, content in site_files(site).items() if str(tmp_path).encode() in content]
    channel = (site / "channels" / "late" / "0.html").read_text()
    assert "over the 5 dataset images" in channel and channel.count('<li><a href="../../images/') == 0
    assert channel.count('class="examples"') == 1 and channel.count("<rect ") == 4
    # The scores rule ran before the site (an input of export_site): every page has its scorecard.
    assert (tmp_path / "results" / "e2e" / "scores.h5").is_file()
    assert 'class="scorecard"' in channel and "fires on images" in channel
    assert 'data-sort="clarity-gain"' in (site / "layers" / "late.html").read_text()


def test_export_imports_no_torch(real_run, tmp_path):
    """Reading every store and writing the site (the stage's one entry point) never imports torch."""
    code = (
        "import sys; from pipeline.site import SiteSettings, run_site; "
        f"run_site(SiteSettings(), {str(real_run[0])!r}, {str(tmp_path / 'site')!r}, progress=False); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "images" / "img01.html").is_file()


def test_site_settings_are_the_schema_site_section():
    """Same fields and defaults as workflow/config/schema.yaml's `site:`; `enabled` is a switch."""
    import yaml

    from pipeline.settings import schema_defaults

    schema = yaml.safe_load((REPO / "workflow" / "config" / "schema.yaml").read_text())
    assert SiteSettings().to_dict() == schema_defaults(schema, "site")
    settings = SiteSettings.from_config({"enabled": True, "title": "t", "similar_channels": 0})
    assert settings == SiteSettings(title="t", similar_channels=0)
    with pytest.raises(ValueError, match="unknown setting.*top_exampels"):
        SiteSettings.from_config({"top_exampels": 3})


def test_the_site_and_the_query_show_the_same_examples_and_classes(real_run):
    """One conversion of the stored top examples and one class ranking serve both (the query
    rounds its JSON numbers; the site keeps them exact and rounds when it prints)."""
    import pipeline
    from pipeline.store import json_number

    with (
        pipeline.open_results(real_run[0]) as results,
        atlas_reader.from_results(real_run[0], SiteSettings(top_examples=3, top_classes=2)) as data,
    ):
        for layer in data.layers:
            for unit in layer.units:
                queried = results.top_examples(layer.name, unit.index, k=3)
                assert [
                    (e.image_id, json_number(e.activation), e.y, e.x, list(e.box), e.label)
                    for e in unit.examples
                ] == [(q["image_id"], q["activation"], q["y"], q["x"], q["box"], q["label"]) for q in queried]
                classes = results.top_classes(layer.name, unit.index, k=2)
                assert classes and [(k.class_id, json_number(k.score), k.images) for k in unit.classes] == [
                    (q["class_id"], q["score"], q["images"]) for q in classes
                ]
                assert unit.label == results.label(layer.name, unit.index)  # one labelling call


def test_a_labelled_channel_shows_its_label_on_every_page_and_in_the_search_index(tmp_path):
    """conv:1 of the ImageNet toy supports the two retrievers (tests/helpers/site.py works
    its label out by hand): "retriever", confidence 0.727; conv:0 has no clear label."""
    site = build_site(imagenet_atlas(), tmp_path / "site")
    channel = (site / "channels/conv/1.html").read_text()
    assert (
        '<p class="unit-label">label: <strong>retriever — Labrador retriever, golden retriever '
        "(confidence 0.7273, 35 images, 2 classes)</strong></p>"
    ) in channel
    assert "How labels are made" in channel
    assert "label: <strong>no clear label</strong>" in (site / "channels/conv/0.html").read_text()
    assert '<p class="unit-label">' not in (site / "channels/mix.a/0.html").read_text()  # no attribution
    grid = (site / "layers/conv.html").read_text()
    assert (
        'title="conv:1 label: retriever, mean' in grid and 'title="conv:0 label: no clear label, mean' in grid
    )
    assert (
        '<span class="unit-label">retriever</span>' in grid and grid.count('<span class="unit-label">') == 1
    )
    assert "feature visualization of conv channel 1, label: retriever" in grid
    labrador = (site / "classes/208.html").read_text()
    assert '<span>conv:1</span></a> <span class="unit-label">retriever</span>' in labrador
    text = (site / "search-index.js").read_text()
    entries = json.loads(text[text.index("{") : text.rindex("}") + 1])["entries"]
    by_name = {(e["kind"], e["name"]): i for i, e in enumerate(entries)}
    labelled = entries[by_name["channel", "conv:1"]]
    assert labelled["label"] == "retriever" and labelled["confidence"] == pytest.approx(0.727273)
    under = {entries[i]["name"] for i in labelled["under"]}
    assert {"retriever", "sporting dog", "dog", "canine", "carnivore", "entity"} <= under
    assert "label" not in entries[by_name["channel", "conv:0"]]  # no clear label: nothing to find


def page_json(html: str, element: str) -> dict:
    return json.loads(re.search(rf'id="{element}">(.*?)</script>', html, re.S).group(1))


RETRIEVER_LINE = "retriever — Labrador retriever, golden retriever (confidence 0.7273, 35 images, 2 classes)"


def test_labels_appear_in_building_blocks_groups_atlas_cells_circuits_and_the_overview(tmp_path):
    """The ImageNet toy's labels (tests/helpers/site.py works them out): conv:1 "retriever",
    conv:0, 2, 3 no clear label; img0's conv group 2 "retriever", group 1 none; the atlas's
    cell (0, 0) of level 2 "retriever", tentative (3 images)."""
    site = build_site(imagenet_atlas(), tmp_path / "site")
    image = (site / "images/img0.html").read_text()
    conv = page_json(image, "blocks-data")["layers"][0]
    # Every channel the views name carries its label's short form, for the scripts.
    assert conv["labels"] == {
        "0": "no clear label",
        "1": "retriever",
        "2": "no clear label",
        "3": "no clear label",
    }
    assert page_json(image, "blocks-data")["layers"][1]["labels"] == {}  # mix.a: no attribution
    assert conv["groups"]["labels"] == [
        {"short": "no clear label", "line": "no clear label"},
        {"short": "retriever", "line": RETRIEVER_LINE},
    ]
    groups = image.split('id="groups"')[1]
    assert f'<span class="unit-label group-label">{RETRIEVER_LINE}</span>' in groups
    assert groups.count("group-label") == 2  # both conv groups; mix.a's have no labels
    assert 'title="conv:1 retriever"' in groups  # group 2's member conv:1
    # Atlas: the cell's label, short and full, and its channels' labels.
    atlas = page_json((site / "atlas/conv.html").read_text(), "atlas-data")
    first, second = atlas["levels"][0]["cells"]
    assert first["label"]["short"] == "retriever (tentative)"
    assert first["label"]["line"].startswith(
        "retriever — Labrador retriever, golden retriever (confidence 1,"
    )
    assert first["label"]["line"].endswith("3 images, 2 classes; tentative)")
    assert second["label"] == {"short": "no clear label", "line": "no clear label"}
    assert atlas["levels"][1]["cells"][0]["label"] is None  # not labelled
    assert [c.get("label") for c in first["channels"]] == ["no clear label", "retriever"]
    # Circuits (mix.a:1 is fed by conv:1) and most similar channels (conv:0's first is conv:1).
    fed = (site / "channels/mix.a/1.html").read_text().split('class="circuits"')[1]
    assert (
        '<span>conv:1 <small>(same index)</small></span></a> <span class="unit-label">retriever</span>' in fed
    )
    similar = (site / "channels/conv/0.html").read_text().split("Most similar channels")[1]
    assert '<span>conv:1</span></a> <span class="unit-label">retriever</span>' in similar
    # The index's overview: per layer the counts and the most confident labels, linked.
    index = (site / "index.html").read_text()
    conv_row, mix_row = index.split('<td class="labels">')[1:3]
    assert "1 labelled (0 tentative) · 3 no clear label" in conv_row
    assert (
        f'<a href="channels/conv/1.html" title="{RETRIEVER_LINE}"><span class="unit-label">retriever</span> '
        "<small>conv:1</small></a>" in conv_row
    )
    assert "no labels (no class attribution in this run)" in mix_row.split("</td>")[0]
    assert '<td class="labels">' in (site / "layers.html").read_text()


def test_images_where_the_channel_does_not_fire_are_not_top_examples(tmp_path):
    data = synthetic_atlas()
    unit = data.layers[0].units[2]
    unit.examples[1].activation = 0.0  # the channel's largest value in that image
    data.layers[0].units[3].examples = [dataclasses.replace(e, activation=-0.5) for e in unit.examples]
    site = build_site(data, tmp_path / "site")
    page = (site / "channels/conv/2.html").read_text()
    examples = page.split('<ol class="examples">')[1].split("</ol>")[0]
    assert examples.count("<li>") == 1 and "the crop of img0 where conv channel 2 is strongest" in examples
    assert "1 more of its best images are left out: the channel does not fire on them" in page
    silent = (site / "channels/conv/3.html").read_text()
    assert '<ol class="examples">' not in silent
    assert "does not fire on any of its 2 best images" in silent


def test_atlas_page_and_class_scripts(site):
    html = (site / "atlas/conv.html").read_text()
    data = json.loads(re.search(r'id="atlas-data">(.*?)</script>', html, re.S).group(1))
    assert [level["side"] for level in data["levels"]] == [2, 4]
    first = data["levels"][0]["cells"][0]
    assert (first["i"], first["j"], first["n"]) == (0, 0, 5) and first["classes"][0] == [0, 2.0]
    assert first["examples"][0]["page"] == "../images/img0.html"
    assert first["channels"][0] == {
        "c": 0,
        "value": 1.5,
        "page": "../channels/conv/0.html",
        "thumb": "../img/featurevis/conv/0-thumb.png",
    }
    assert (site / "atlas" / first["icon"]).is_file()
    # One script per filter class, holding every cell's attribution per level.
    script = (site / "atlas/conv/class-1.js").read_text()
    payload = json.loads(script[script.index("(") + 1 : script.rindex(")")])
    assert script.startswith("modelAtlasClass(") and payload["class"] == 1
    assert payload["levels"] == [[-1.0, 1.0], [0.0, 0.0, 2.0, 4.0]]
    assert data["classScripts"] == {"0": "conv/class-0.js", "1": "conv/class-1.js"}
    assert '<a href="../layers/conv.html">conv</a>' in html and "activation atlas" in html


def test_the_overview_counts_a_layers_labels_and_shows_the_most_confident():
    from pipeline.labels.rule import NO_LABEL, Label
    from pipeline.site.labels import layer_label_summary

    def unit(index, name, confidence, tentative=False):
        synset = None if name == NO_LABEL else f"s:{name}"
        return ad.Channel(index, label=Label(synset, name, (), confidence, 0, 0, tentative))

    units = [
        unit(0, "dog", 0.5),
        unit(1, "cat", 0.9, tentative=True),
        unit(2, "dog", 0.7),  # the more confident dog: shown instead of channel 0
        unit(3, NO_LABEL, 0.1),
        unit(4, "car", 0.3),
        ad.Channel(5),  # no attribution: not counted
    ]
    summary = layer_label_summary(units)
    assert (summary["labelled"], summary["tentative"], summary["unlabelled"]) == (3, 1, 1)
    # Firm labels first by confidence, one per name; a tentative one only fills up.
    assert [u.index for u in summary["examples"]] == [2, 4, 1]
    assert [u.index for u in layer_label_summary(units, examples=2)["examples"]] == [2, 4]
    assert layer_label_summary([ad.Channel(0)]) is None
