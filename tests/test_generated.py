"""A chapter's parameters have one source: its spec module.  The notebook's parameters cell and
the README's chapter table are generated from the specs and must be in sync."""
import ast
import json

import nbformat
import pytest

from conftest import ROOT
from nncompress.course import chapters, generated
from nncompress.course.params import Spec

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_notebook_has_a_chapter_and_every_chapter_a_notebook():
    assert [p.stem for p in NOTEBOOKS] == chapters.names()


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_generated_from_the_specs(notebook):
    nb = nbformat.read(str(notebook), as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in cell.metadata.get("tags", [])
    assert cell.source == generated.parameters_source(chapters.specs(notebook.stem)), \
        f"{notebook.name}: parameters cell out of date: run `make params`"
    # the cell assigns exactly the spec names, in spec order, as literals
    tree = ast.parse(cell.source)
    names = [n.targets[0].id for n in tree.body]
    assert names == list(chapters.specs(notebook.stem))


def test_readme_chapter_table_is_generated():
    assert not generated.sync_readme(ROOT / "README.md", check=True), "README chapter table out of date: make params"


def test_check_mode_changes_nothing_and_reports(tmp_path):
    src = NOTEBOOKS[1]
    copy = tmp_path / src.name
    nb = nbformat.read(str(src), as_version=4)
    next(c for c in nb.cells if c.cell_type == "code").source = "preset = 'cpu'"
    nbformat.write(nb, str(copy))
    before = copy.read_bytes()
    assert generated.main([str(copy), "--check"]) == 1
    assert copy.read_bytes() == before
    assert generated.main([str(copy)]) == 0
    assert generated.main([str(copy), "--check"]) == 0


def test_parameter_line():
    assert generated.parameter_line("lr", Spec(float, presets={"cpu": 0.01, "gpu": 0.1}, help="learning rate")) \
        == "lr = None               # learning rate (cpu: 0.01, gpu: 0.1)"
    assert generated.parameter_line("mode", Spec(str, "a", choices=("a", "b"))) == 'mode = "a"              # ("a" / "b")'
    assert generated.parameter_line("xs", Spec(list, [1, 2], item=int)) == "xs = [1, 2]"


def test_chapter_info_is_read_without_importing():
    info = chapters.info("01_knowledge_distillation")
    assert info["NOTEBOOK"] == "01_knowledge_distillation" and info["TITLE"] and info["TOPIC"]
