"""The layout is the architecture: each package's docstring says what it may import and what it must never load,
and this test holds every module to it (and ``docs/architecture.md`` to the tree).

``May import:`` names the packages of ours a module may import, anywhere in it (lazy imports included);
``core`` is the flat modules at the top of ``experiment_core``. ``Never loads:`` names modules that must not be in
``sys.modules`` after importing any module of the package in a fresh interpreter (what its import costs).
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = "experiment_core"


class Rules(NamedTuple):
    may_import: frozenset[str]
    never_loads: tuple[str, ...]


def core_modules(root: Path) -> set[str]:
    return {p.stem for p in (root / PACKAGE).glob("*.py") if p.stem not in ("__init__", "__main__", "cli")}


def packages(root: Path) -> dict[str, Rules]:
    """Every package of ours that declares rules, by name, read from its ``__init__`` docstring."""
    found: dict[str, Rules] = {}
    for init in sorted((root / PACKAGE).glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        may = re.search(r"^May import: (.+)$", doc, re.M)
        never = re.search(r"^Never loads: (.+)$", doc, re.M)
        if may:
            found[init.parent.name] = Rules(
                frozenset(n.strip() for n in may[1].split(",")),
                tuple(n.strip() for n in never[1].split(",")) if never else (),
            )
    return found


def imported(tree: ast.AST) -> set[str]:
    """Dotted names of our modules a module imports, wherever the import statement is."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith(PACKAGE + "."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            assert node.level == 0, "relative import: the layout rules read absolute ones"
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def owner(dotted: str, root: Path) -> tuple[str, str] | None:
    """The package (or ``core``) and module a dotted name of ours belongs to; None for the package's own API."""
    parts = dotted.split(".")[1:]
    if (root / PACKAGE / parts[0]).is_dir():
        return parts[0], parts[1] if len(parts) > 1 else ""
    return ("core", parts[0]) if parts[0] in core_modules(root) else None


def violations(root: Path) -> list[str]:
    """Every import of ours a package's docstring forbids, as ``module: imports x (package y)``."""
    rules = packages(root)
    found = []
    for pkg, rule in rules.items():
        for path in sorted((root / PACKAGE / pkg).glob("*.py")):
            for name in sorted(imported(ast.parse(path.read_text()))):
                where = owner(name, root)
                if where is not None and where[0] not in {pkg, *rule.may_import} and where[1] not in rule.may_import:
                    found.append(f"{pkg}/{path.name}: imports {name} ({where[0]})")
    for path in sorted((root / PACKAGE).glob("*.py")):
        if path.stem in core_modules(root):
            for name in sorted(imported(ast.parse(path.read_text()))):
                if (where := owner(name, root)) is not None and where[0] != "core":
                    found.append(f"{path.name}: a core module imports {name}")
    return found


LOADS = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def loaded(module: str, root: Path) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", LOADS, module], cwd=root, capture_output=True, text=True, check=True)
    return set(json.loads(proc.stdout))


def test_every_package_declares_its_rules_and_the_tree_keeps_them() -> None:
    rules = packages(PROJECT)
    subpackages = {p.parent.name for p in (PROJECT / PACKAGE).glob("*/__init__.py")}
    assert subpackages == set(rules), "a package without `May import:` in its docstring"
    assert violations(PROJECT) == []


def test_the_rule_check_fails_on_a_forbidden_import(tmp_path: Path) -> None:
    # the same check on a copy of the package with one forbidden import added: the hook path pulling in a renderer
    shutil.copytree(PROJECT / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / PACKAGE / "hookpaths" / "post_commit.py"
    target.write_text(target.read_text() + "\n\ndef _late() -> None:\n    from experiment_core.reports import svg\n")
    stats = tmp_path / PACKAGE / "evidence" / "stats.py"
    stats.write_text(stats.read_text() + "\nfrom experiment_core.gitio import Git\n")
    assert violations(tmp_path) == [
        "evidence/stats.py: imports experiment_core.gitio.Git (core)",
        "hookpaths/post_commit.py: imports experiment_core.reports.svg (reports)",
    ]


@pytest.mark.parametrize("pkg", sorted(packages(PROJECT)))
def test_importing_a_package_module_never_loads_what_its_docstring_forbids(pkg: str) -> None:
    never = packages(PROJECT)[pkg].never_loads
    for path in sorted((PROJECT / PACKAGE / pkg).glob("*.py")):
        module = f"{PACKAGE}.{pkg}.{path.stem}".removesuffix(".__init__")
        heavy = sorted(m for m in loaded(module, PROJECT) if m.split(".")[0] in never or
                       any(m == n or m.startswith(n + ".") for n in never))  # fmt: skip
        assert heavy == [], f"importing {module} loads {heavy}"


def test_architecture_map_names_every_package_and_module() -> None:
    text = (PROJECT / "docs" / "architecture.md").read_text()
    for path in sorted((PROJECT / PACKAGE).rglob("*.py")):
        rel = path.relative_to(PROJECT / PACKAGE)
        if rel.parts[0] == "commands" or rel.name in ("__init__.py", "__main__.py"):
            continue
        assert f"`{rel.as_posix()}`" in text, f"docs/architecture.md does not mention `{rel.as_posix()}`"
    for pkg in packages(PROJECT):
        assert f"## `{pkg}/`" in text, f"docs/architecture.md has no section for {pkg}/"


def test_no_function_a_reader_has_to_scroll() -> None:
    # long functions become named steps: none of ours is longer than 60 lines, signature and docstring included
    long = []
    for path in sorted((PROJECT / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.end_lineno is None:
                continue
            if (lines := node.end_lineno - node.lineno + 1) > 60:
                long.append(f"{path.relative_to(PROJECT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []
