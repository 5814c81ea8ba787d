"""The package's structure: which modules may know what (checked on the source, not at run time)."""

import ast
import re
from pathlib import Path

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline"

# What a store's HDF5 path looks like (docs/STORE.md): a group of the layouts followed by
# "/", or a path ending in a dataset only the stores hold. Site URLs such as
# "layers/{}.html" end in a file extension and are not store paths.
STORE_GROUPS = (
    "layers",
    "predictions",
    "images",
    "classes",
    "stats",
    "top",
    "grid",
    "groups",
    "dictionary",
    "attribution",
    "from_previous",
    "shards",
)
STORE_PATH = re.compile(rf"^/?({'|'.join(STORE_GROUPS)})/")
STORE_LEAF = re.compile(
    r"/(icons|vectors|maps|thumbnails|top_ids|top_logits|top_scores|"
    r"hist_counts|hist_edges|mean_of_mean|rf_rows|rf_cols)$"
)
FILE_NAME = re.compile(r"\.[A-Za-z0-9]+$")
# Dataset names that only the stores' files use: indexing with them reads a store directly.
STORE_KEYS = {
    "top_ids",
    "top_logits",
    "top_scores",
    "thumbnails",
    "hist_counts",
    "hist_edges",
    "mean_of_mean",
    "rf_rows",
    "rf_cols",
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _strings(tree: ast.AST):
    """(node, text) of every string in the code, docstrings aside; an f-string's text has
    ``{}`` where its values go."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
            yield (
                node,
                "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values),
            )
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node, node.value


def _key_lookups(tree: ast.AST):
    """String constants used to index (``x["top_ids"]``) or tested for (``"top_ids" in x``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            key = node.slice
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            key = node.left
        else:
            continue
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            yield node, key.value


def store_paths_named(source: str, name: str) -> list[str]:
    """``name:line: text`` of every HDF5 path (or store-only key lookup) in Python ``source``."""
    tree = ast.parse(source, filename=name)
    found = [
        (node.lineno, repr(text))
        for node, text in _strings(tree)
        if (STORE_PATH.search(text) or STORE_LEAF.search(text)) and not FILE_NAME.search(text)
    ]
    found += [(node.lineno, f"[{key!r}]") for node, key in _key_lookups(tree) if key in STORE_KEYS]
    return [f"{name}:{line}: {what}" for line, what in sorted(found)]


def test_only_the_store_names_hdf5_paths():
    """Every HDF5 layout is known to pipeline/store alone; the rest reads through its typed readers."""
    modules = [p for p in sorted(PIPELINE.rglob("*.py")) if p.relative_to(PIPELINE).parts[0] != "store"]
    assert len(modules) > 10
    offenders = [
        hit
        for module in modules
        for hit in store_paths_named(module.read_text(), str(module.relative_to(PIPELINE.parent)))
    ]
    assert not offenders, "HDF5 paths named outside pipeline/store:\n" + "\n".join(offenders)


def test_the_check_sees_store_paths():
    """The scan catches what the rule is about, and lets docstrings, site URLs and dict keys pass."""
    probe = (
        '"""A docstring may name layers/<layer>/top."""\n'
        'a = store.fh[f"layers/{name}/max"]\n'
        'b = fh["predictions/top_ids"]\n'
        'c = group["top_ids"]\n'
        'd = "grid/icons" in group\n'
        'e = f"layers/{name}.html"\n'
        'f = {"top_ids": ids}\n'
        'g = "img/images/x.png"\n'
    )
    assert store_paths_named(probe, "probe.py") == [
        "probe.py:2: 'layers/{}/max'",
        "probe.py:3: 'predictions/top_ids'",
        "probe.py:4: ['top_ids']",
        "probe.py:5: 'grid/icons'",
    ]


# Which parts of the package each part may import: dependencies point one way, from the
# jobs down to the model and the stores; the site and the queries read stores only (no torch).
ALLOWED_IMPORTS = {
    "_lazy": (),
    "settings": (),
    "ranking": (),  # top-k with one contract, NumPy only: for the stages, the site and the queries
    "runtime": (),
    "store": (),
    # The model job writes the run's layer list through the store's typed writer.
    "model": ("runtime", "settings", "store"),
    "images": ("settings",),
    "optvis": ("model",),
    "featurevis": ("optvis", "model", "images", "store", "settings", "runtime"),
    # The reduction labels each layer's channels from the attribution it has just merged.
    "extract": ("model", "images", "store", "settings", "runtime", "ranking", "labels"),
    "blocks": ("optvis", "featurevis", "model", "images", "store", "settings", "runtime"),
    "circuits": ("model", "images", "store", "settings"),
    # The scores read the channels' labels to measure their precision.
    "scores": ("model", "store", "settings", "labels"),
    # The atlas's layout job cuts thumbnails as the reduction does, with its settings' defaults;
    # its render jobs draw the cells' icons with the feature-visualization engine.
    "atlas": (
        "optvis",
        "featurevis",
        "model",
        "images",
        "store",
        "settings",
        "runtime",
        "extract.settings",
        "extract.crops",
        "ranking",
    ),
    # A channel's label is read from the store, or computed from its attribution and the class
    # hierarchy for a store written before labels were stored.
    # The score table carries its definitions (pipeline/scores/definitions.py: plain data).
    "query": ("store", "ranking", "labels", "search", "scores.definitions"),
    # The search index and its ranking rule: plain data over the class hierarchy.
    "search": ("labels",),
    # Labels are named from a class hierarchy: plain data, NumPy only; their settings are the
    # config's labels: section (a StageSettings, no torch).
    "labels": ("ranking", "settings"),
    # The site reads stores; of the stages it uses one NumPy-only analysis; its channels'
    # labels come from the query API's own call (labels.layers), NumPy only; its scorecards
    # say each score's name and sentence from the scores' definitions (plain data).
    "site": (
        "store",
        "query",
        "settings",
        "extract.similarity",
        "ranking",
        "search",
        "labels",
        "scores.definitions",
    ),
    # The comparison reads the runs' activations stores only (no model, no torch).
    "compare": ("store", "settings"),
    "cli": ("query", "model", "compare"),
    "__init__": ("query", "store.compare"),
}


def _part(path: Path) -> str:
    relative = path.relative_to(PIPELINE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imported(tree: ast.AST) -> set[str]:
    """``pipeline.X.Y`` names imported anywhere in a module (also inside functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "pipeline":  # from pipeline import x
                found.update(f"pipeline.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("pipeline.")}


def test_dependencies_point_one_way():
    wrong = []
    for path in sorted(PIPELINE.rglob("*.py")):
        part = _part(path)
        allowed = ALLOWED_IMPORTS[part]
        for name in sorted(_imported(ast.parse(path.read_text()))):
            target = name.removeprefix("pipeline.")
            if target.split(".")[0] in (part, "_lazy"):  # the lazy-attribute helper serves all
                continue
            if not any(target == a or target.startswith(a + ".") for a in allowed):
                wrong.append(f"{path.relative_to(PIPELINE.parent)} ({part}) imports {name}")
    assert not wrong, "imports against the dependency direction:\n" + "\n".join(wrong)


def test_the_store_the_site_and_the_queries_never_import_torch():
    for path in sorted(PIPELINE.rglob("*.py")):
        if _part(path) in ("store", "site", "query", "settings", "labels", "search", "compare"):
            names = {
                alias.name.split(".")[0]
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
            }
            assert not names & {"torch", "torchvision", "timm"}, path


MAX_PARAMETERS = 8


def test_no_function_takes_more_than_eight_parameters():
    too_many = []
    for path in sorted(PIPELINE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
                count = len([n for n in names if n not in ("self", "cls")])
                if count > MAX_PARAMETERS:
                    too_many.append(f"{path.relative_to(PIPELINE.parent)}:{node.lineno} {node.name}: {count}")
    assert not too_many, "functions with more than 8 parameters:\n" + "\n".join(too_many)


# ---------------------------------------------------------------------------------
# The site's scripts: site/static/common.js is shared, the others are one page kind's.
# ---------------------------------------------------------------------------------

STATIC = PIPELINE.parent / "site" / "static"
SHARED_JS = "common.js"
# A page script's first comment names the element it needs: "(...needs #blocks-data)".
NEEDS = re.compile(r"needs #([\w-]+)")
JS_FUNCTION = re.compile(
    r"\bfunction\s+([A-Za-z_$][\w$]*)\s*\(|\b(?:var|let|const)\s+([A-Za-z_$][\w$]*)\s*=\s*function\b"
)
# common.js ends its namespace with "return { name: value, ... };": the names it exports.
JS_EXPORTS = re.compile(r"\n  return \{(.*?)\n  \};", re.S)


def js_functions(source: str) -> set[str]:
    """Names of the functions a script defines (declarations and ``var f = function``)."""
    return {a or b for a, b in JS_FUNCTION.findall(source)}


def shared_exports() -> set[str]:
    """The names common.js exports (its namespace's keys)."""
    found = JS_EXPORTS.findall((STATIC / SHARED_JS).read_text(encoding="utf-8"))
    assert len(found) == 1, f"{SHARED_JS}: expected one 'return {{ ... }};' of its exports"
    return set(re.findall(r"([A-Za-z_$][\w$]*)\s*:", found[0]))


def page_scripts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(STATIC.glob("*.js")) if p.name != SHARED_JS}


def test_the_js_check_sees_definitions():
    assert js_functions("function el(tag) {}\n  var fmt = function (v) {};") == {"el", "fmt"}
    assert js_functions("atlas.el(x); var n = formatNumber(v);") == set()


def test_no_page_script_defines_a_helper_that_the_shared_module_has():
    shared = shared_exports()
    assert {"el", "formatNumber", "formatSigned", "readJson", "deferImages", "setupShortcuts"} <= shared
    for name, source in page_scripts().items():
        copies = js_functions(source) & shared
        assert not copies, (
            f"site/static/{name} defines {sorted(copies)}: {SHARED_JS} has them (ModelAtlas.<name>)"
        )
        # Number text is the shared formatter's alone (toFixed for CSS sizes is fine).
        assert not re.search(r"\.toPrecision\(|\.toExponential\(", source), f"{name} formats numbers itself"


def test_every_page_loads_the_shared_script_first_and_only_the_scripts_it_uses(tmp_path):
    from pipeline.site.build import build_site
    from tests.helpers.compare_site import build_tiny_comparison
    from tests.helpers.site import synthetic_atlas

    needs = {name: NEEDS.search(source) for name, source in page_scripts().items()}
    missing = sorted(name for name, found in needs.items() if found is None)
    assert not missing, f"page scripts without a 'needs #id' in their first comment: {missing}"
    site = build_site(synthetic_atlas(), tmp_path / "site")
    # The comparison site's pages (pipeline/site/compare_site.py) follow the same rules.
    comparison = build_tiny_comparison(tmp_path / "compare")
    kinds = set()
    for page in sorted([*site.rglob("*.html"), *comparison.rglob("*.html")]):
        html = page.read_text(encoding="utf-8")
        loaded = [src.rsplit("/", 1)[-1] for src in re.findall(r'<script src="([^"]+)"', html)]
        where = page.relative_to(site if page.is_relative_to(site) else comparison)
        assert loaded[:1] == [SHARED_JS], f"{where}: loads {loaded}, not {SHARED_JS} first"
        for name, found in needs.items():
            has_element = f'id="{found.group(1)}"' in html
            assert (name in loaded) == has_element, f"{where}: loads {loaded}; {name} needs #{found.group(1)}"
        kinds.add(tuple(loaded))
    # The tiny site has every page kind: with only the shared script, and with each page script.
    assert {name for scripts in kinds for name in scripts} == {SHARED_JS, *needs}
    # The search box is on every page; its index is a script of its own that no page loads
    # (static/search.js adds it when the box is first used).
    assert (site / "search-index.js").is_file() and (comparison / "search-index.js").is_file()
    for page in sorted([*site.rglob("*.html"), *comparison.rglob("*.html")]):
        html = page.read_text(encoding="utf-8")
        assert 'id="site-search"' in html and 'search-index.js"></script>' not in html, page
    templates = PIPELINE.parent / "site" / "templates"
    for template in templates.glob("*.html"):
        if template.name != "_base.html":
            assert "<script src" not in template.read_text(encoding="utf-8"), (
                f"{template.name}: scripts load in _base.html"
            )


# -- issue 24: one provenance record, rules' keys from the settings classes, short functions

WORKFLOW_RULES = PIPELINE.parent / "workflow" / "rules"


def _calls(tree: ast.AST, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called == name:
                yield node


def test_every_store_records_its_provenance_through_the_one_helper():
    for path in PIPELINE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        part = path.relative_to(PIPELINE).as_posix()
        # Only the helper makes records: no module builds one by hand ...
        if part != "store/_provenance.py":
            assert not list(_calls(tree, "ProvenanceRecord")), f"{part} builds a provenance record by hand"
        # ... every store is written with one (atomic_h5 refuses anything else) ...
        for call in _calls(tree, "atomic_h5"):
            assert "settings" in {k.arg for k in call.keywords}, f"{part}:{call.lineno} writes no provenance"
        # ... and no module writes the provenance attributes itself.
        for text in _strings(tree):
            if part != "store/_format.py":
                assert text not in {"settings_json", "config_hash"} or part.startswith("store/"), part


def test_the_store_writers_refuse_a_hand_made_settings_dict(tmp_path):
    import pytest

    from pipeline.store import atomic_h5, provenance

    with pytest.raises(TypeError, match="built by pipeline.store.provenance"):
        with atomic_h5(tmp_path / "a.h5", "demo", 1, settings={"steps": 8}):
            pass
    model = {"name": "m", "weights": "w", "device": "cpu"}
    record = provenance(stage="demo", settings={"steps": 8}, model=model)
    assert record == {
        "provenance": 1,
        "stage": "demo",
        "model": {"name": "m", "weights": "w"},  # the device is not provenance
        "settings": {"steps": 8},
        "derived": {},
        "inputs": {},
    }


def test_rules_take_their_settings_keys_from_the_settings_classes():
    # A rule's settings params are a settings object's declared key list (or its whole
    # per-image/section dict), never keys typed inline, so that what re-runs a job and
    # what its store records (the same list, in the job) cannot drift apart.
    for smk in sorted(WORKFLOW_RULES.glob("*.smk")):
        for number, line in enumerate(smk.read_text().splitlines(), 1):
            assert ".subset((" not in line and ".subset([" not in line, f"{smk.name}:{number}: {line.strip()}"


def test_the_atlas_icons_record_exactly_the_keys_their_rule_passes():
    from pipeline.atlas import AtlasSettings
    from pipeline.atlas.render import icons_provenance
    from pipeline.featurevis import FeaturevisSettings
    from pipeline.model import ModelSpec

    text = (WORKFLOW_RULES / "atlas.smk").read_text()
    rule = text[text.index("rule atlas_render") :]
    assert "settings=SETTINGS_ATLAS.subset(AtlasSettings.ICON_KEYS)" in rule
    assert "featurevis=SETTINGS_FEATUREVIS.subset(FeaturevisSettings.ICON_KEYS)" in rule
    record = icons_provenance(AtlasSettings(), FeaturevisSettings(preset="fast"), ModelSpec())
    assert set(record["settings"]["atlas"]) == set(AtlasSettings.ICON_KEYS)
    # The opt-in keys (issue 28) are recorded only when set: at their defaults they are not.
    assert set(record["settings"]["featurevis"]) == set(FeaturevisSettings.ICON_KEYS) - set(
        FeaturevisSettings.OPT_IN_DEFAULTS
    )
    # Every optimiser setting is among them, and the preset's rules are spelled out.
    optimiser = {"preset", "steps", "image_size", "lr", "adam_betas", "init_sd", "decay_power", "param"}
    assert optimiser | {"seed", "relu_override_steps"} <= set(FeaturevisSettings.ICON_KEYS)
    assert record["derived"]["preset_rules"][0]["decay_power"] == 1.5


MAX_FUNCTION_LINES = 60


def test_no_function_is_over_sixty_lines_without_a_reason_above_it():
    long = []
    for path in sorted(PIPELINE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if node.end_lineno - node.lineno + 1 <= MAX_FUNCTION_LINES:
                continue
            above = lines[start - 2].strip() if start >= 2 else ""
            name = f"{path.relative_to(PIPELINE).as_posix()}:{node.name}"
            if not above.startswith("#"):
                long.append(f"{name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, "functions over 60 lines with no reason written above them: " + ", ".join(long)
