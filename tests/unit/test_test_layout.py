"""Tests stand on their own: a test module never imports another test module or a
conftest.py (fixtures reach tests by name, from the conftest.py of their folder);
what tests share lives in tests/helpers/, which imports no test either. Unit tests
mirror the package tree."""

from __future__ import annotations

import ast

from tests.helpers.data import REPO

TESTS = REPO / "tests"


def _imported_modules(path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names]
    return found


def _offenders(paths) -> list[str]:
    found = []
    for path in paths:
        for module in _imported_modules(path):
            parts = module.split(".")  # tests.helpers.* only: never a test module or a conftest
            if parts[0] == "tests" and len(parts) > 1 and parts[1] != "helpers":
                found.append(f"{path.name} imports {module}")
    return found


def test_no_test_module_imports_a_test_module_or_a_conftest():
    offenders = _offenders(sorted(TESTS.rglob("*.py")))
    assert offenders == [], "\n".join(offenders)


def test_the_check_catches_a_test_importing_a_test_or_a_conftest(tmp_path):
    bad = tmp_path / "test_x.py"
    bad.write_text("from tests.integration.test_ingest import x\nfrom tests.helpers.data import REPO\n")
    fixture = tmp_path / "test_y.py"
    fixture.write_text("def f():\n    from tests.e2e.conftest import sh\n")
    assert _offenders([bad, fixture]) == [
        "test_x.py imports tests.integration.test_ingest",
        "test_x.py imports tests.integration.test_ingest.x",
        "test_y.py imports tests.e2e.conftest",
        "test_y.py imports tests.e2e.conftest.sh",
    ]


def test_unit_tests_mirror_the_package_tree():
    rooms = {"portrait", "training", "registry", "serving"}
    misplaced = []
    for path in sorted((TESTS / "unit").rglob("test_*.py")):
        folder = path.parent.relative_to(TESTS / "unit")
        if not folder.parts:  # tests/unit/test_*.py: the repository as a whole (layout, benchmarks)
            continue
        if folder.parts[0] not in rooms or not (REPO / folder).is_dir():
            misplaced.append(str(path.relative_to(REPO)))
    assert misplaced == [], misplaced


def test_every_import_of_our_own_code_in_tests_and_bench_resolves():
    """A moved module or name fails here, in seconds, not in the test that imports it
    inside a function half-way through an integration run."""
    import importlib

    ours = ("portrait", "training", "registry", "serving", "tests")
    broken = []
    for path in sorted([*TESTS.rglob("*.py"), *(REPO / "bench").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ours):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        broken.append(f"{path.relative_to(REPO)}:{node.lineno} {node.module}.{alias.name}")
    assert broken == [], broken
