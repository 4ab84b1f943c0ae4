"""The layers hold: imports only go down, and no modules import each other in a circle.

Lowest first: `eventstore` < `dispatch` < `channels` < `gateway`, then `bench`
and `tests` above all. grimp reads the imports from the source, so it sees
imports inside functions and under `TYPE_CHECKING` too; what it cannot see is
a module named in a string and loaded with `importlib`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from textwrap import dedent

import grimp
import pytest

PACKAGES = ("eventstore", "dispatch", "channels", "gateway")
"""The project's packages, lowest layer first; no cycle between their modules."""
LAYERS: tuple[frozenset[str], ...] = (
    *(frozenset({package}) for package in PACKAGES),
    frozenset({"bench", "tests"}),
)
"""Each layer may import only from itself and the layers before it."""


@dataclass(frozen=True, slots=True, order=True)
class BackImport:
    """An import from a lower layer to a higher one."""

    importer: str
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def _package(module: str) -> str:
    return module.partition(".")[0]


def back_imports(graph: grimp.ImportGraph, layers: Sequence[Collection[str]]) -> list[BackImport]:
    """Every import in `graph` from a module of a lower layer to a module of a higher one."""
    rank = {package: i for i, layer in enumerate(layers) for package in layer}
    found: list[BackImport] = []
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if rank[_package(importer)] < rank[_package(imported)]:
                found.extend(BackImport(importer, detail["line_number"], imported)
                             for detail in graph.get_import_details(importer=importer, imported=imported))
    return sorted(found)


def cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """Each group of modules in `graph` that import each other in a circle, directly or not."""
    groups: set[tuple[str, ...]] = set()
    for module in graph.modules:
        circle = graph.find_upstream_modules(module) & graph.find_downstream_modules(module)
        if circle:
            groups.add(tuple(sorted({module, *circle})))
    return sorted(groups)


@pytest.fixture(scope="module")
def project() -> grimp.ImportGraph:
    """The import graph of every layer."""
    return grimp.build_graph(*sorted(set().union(*LAYERS)), cache_dir=None)


def test_imports_only_go_down_the_layers(project: grimp.ImportGraph) -> None:
    found = back_imports(project, LAYERS)
    assert not found, "imports against the layers:\n" + "\n".join(map(str, found))


def test_no_modules_of_the_packages_import_each_other_in_a_circle() -> None:
    found = cycles(grimp.build_graph(*PACKAGES, cache_dir=None))
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(group) for group in found)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))


def test_the_checks_name_a_back_import_and_a_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, {
        "layering_low/__init__.py": "",
        "layering_low/a.py": """\
            def late():
                from layering_high import b  # a back-import inside a function
                return b
            """,
        "layering_low/b.py": """\
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from layering_low import c
            """,
        "layering_low/c.py": "import layering_low.b\n",
        "layering_low/d.py": "import layering_low.c\n",
        "layering_high/__init__.py": "",
        "layering_high/b.py": "import layering_low.d\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("layering_low", "layering_high", cache_dir=None)

    found = back_imports(graph, [{"layering_low"}, {"layering_high"}])
    assert [str(b) for b in found] == ["layering_low.a:2 imports layering_high.b"]
    assert cycles(graph) == [("layering_low.b", "layering_low.c")]
