"""Each benchmark writes what it printed to its results file, under the date, the
machine and the commit of the run (docs/benchmarks/results/<name>.md)."""

from __future__ import annotations

import importlib.util

from tests.helpers.data import REPO


def _common():
    spec = importlib.util.spec_from_file_location("bench_common", REPO / "bench" / "common.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_benchmark_run_writes_its_printed_figures_with_date_machine_and_commit(tmp_path, capsys):
    common = _common()
    with common.recorded("example", directory=tmp_path):
        print("ratio 1.23x")
    assert "ratio 1.23x" in capsys.readouterr().out  # still printed
    page = (tmp_path / "example.md").read_text()
    assert page.startswith("# bench/example.py")
    assert "- date: " in page and " UTC" in page and "cores" in page and "- commit: " in page
    assert "```\nratio 1.23x\n```" in page


def test_a_variant_is_titled_by_the_script_that_ran_it(tmp_path):
    common = _common()
    with common.recorded("aspects-aspect-model", directory=tmp_path, script="aspects"):
        print("accuracy 0.75")
    page = (tmp_path / "aspects-aspect-model.md").read_text()
    assert page.startswith("# bench/aspects.py\n") and "`python bench/aspects.py" in page


def test_the_results_file_is_written_even_when_the_benchmark_fails(tmp_path):
    common = _common()
    try:
        with common.recorded("broken", directory=tmp_path):
            print("before the failure")
            raise RuntimeError("server down")
    except RuntimeError:
        pass
    assert "before the failure" in (tmp_path / "broken.md").read_text()
