"""Importing Portrait's library changes nothing process-wide: no csv field limit,
no matplotlib backend, no warning filter, no sys.path entry, no working directory
(the composition roots decide those, when they run)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.data import REPO

PROBE = """
import ast, csv, os, sys, warnings, pkgutil, importlib
import portrait, training, registry
names, third_party = [], set()
for package in (portrait, training, registry):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        names.append(info.name)
        spec = importlib.util.find_spec(info.name)
        for node in ast.walk(ast.parse(open(spec.origin).read())):
            if isinstance(node, ast.Import):
                third_party.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                third_party.add(node.module)
# the libraries themselves may set filters when imported (numpy, torch, urllib3): import them first
for name in sorted(third_party):
    if name.split(".")[0] not in ("portrait", "training", "registry", "serving") and name != "matplotlib.pyplot":
        try:
            importlib.import_module(name)
        except Exception:
            pass
before = (csv.field_size_limit(), list(warnings.filters), list(sys.path), os.getcwd())
skip = {"registry.sentiment_model", "registry.rating_model"}  # models-from-code: MLflow's set_model at import
for name in names:
    if name not in skip and not name.endswith(".__main__"):  # __main__: an entry point, it runs
        importlib.import_module(name)
after = (csv.field_size_limit(), list(warnings.filters), list(sys.path), os.getcwd())
changed = [what for what, b, a in zip(("csv.field_size_limit", "warnings.filters", "sys.path", "cwd"), before, after) if a != b]
if "matplotlib.pyplot" in sys.modules:
    changed.append("matplotlib.pyplot imported (a backend chosen)")
print(len(names), changed)
"""


def test_importing_every_library_module_sets_no_process_wide_state():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    count, changed = out.stdout.strip().rsplit(" ", 1)[0], out.stdout.strip().split(" ", 1)[1]
    assert int(count) > 30
    assert changed == "[]", changed
