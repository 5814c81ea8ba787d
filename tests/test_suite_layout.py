"""The test suite's own layout: shared models and data live in tests/helpers, test modules
never import one another, and the custom-loader strings name functions that exist."""

import ast
import re

from tests.helpers.workflow import REPO

TESTS = REPO / "tests"
# A custom loader as configs and tests spell it: "tests.<module path>:<function>".
LOADER = re.compile(r"""["'](tests(?:\.\w+)+):(\w+)["']""")


def _imports(path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_test_modules_import_helpers_only():
    for path in [*sorted(TESTS.glob("test_*.py")), TESTS / "conftest.py"]:
        for name in _imports(path):
            if name == "tests" or name.startswith(("tests.", "test_", "conftest")):
                assert name.startswith("tests.helpers"), f"{path.name} imports {name}"


def test_every_custom_loader_string_names_a_helpers_function():
    sources = [
        *TESTS.rglob("*.py"),
        REPO / "README.md",
        *(REPO / "docs").rglob("*.md"),
        *(REPO / "workflow").rglob("*.yaml"),
        *(REPO / "workflow").rglob("*.py"),
    ]
    found = 0
    for path in sources:
        for module, function in LOADER.findall(path.read_text()):
            assert module.startswith("tests.helpers."), f"{path.name}: {module}:{function}"
            target = REPO.joinpath(*module.split(".")).with_suffix(".py")
            defined = {
                node.name for node in ast.parse(target.read_text()).body if isinstance(node, ast.FunctionDef)
            }
            assert function in defined, f"{path.name}: {module}:{function} does not exist"
            found += 1
    assert found > 10


def test_the_models_import_nothing_from_the_tests():
    """Workflow jobs import the tiny models outside pytest: torch (and timm) only."""
    for name in ("models", "optvis_models"):
        roots = {imported.split(".")[0] for imported in _imports(TESTS / "helpers" / f"{name}.py")}
        assert roots <= {"torch", "timm"}, (name, roots)
