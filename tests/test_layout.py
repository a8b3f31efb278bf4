"""The layout: one direction of imports between the library, the service and the local tools, no import
cycles, and a deployment package that holds the service and nothing local."""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pathspec
import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("agent_core", "service", "devtools", "function_app")
# package -> what it must never import. Every import counts: module level, function-local and `if TYPE_CHECKING:`
# (a type-only import is still a dependency a reader has to follow, and the next refactor makes it a real one).
FORBIDDEN = {
    "agent_core": {"service", "devtools", "function_app"},
    "service": {"devtools", "function_app"},
    "devtools": {"function_app"},
}
Graph = dict[str, set[str]]


# --- the import graph --------------------------------------------------------------------------------


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files(root: Path, tops: Iterable[str]) -> Iterator[Path]:
    for top in tops:
        if (root / f"{top}.py").is_file():
            yield root / f"{top}.py"
        yield from sorted((root / top).rglob("*.py")) if (root / top).is_dir() else ()


def imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every module of ours `module` imports, wherever the import statement is (functions, TYPE_CHECKING)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import sub` imports the submodule pkg.sub when there is one, else a name from pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` depends on the deepest module of ours
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def import_graph(root: Path = ROOT, tops: Iterable[str] = OURS) -> Graph:
    files = {module_name(path, root): path for path in source_files(root, tops)}
    known = set(files)
    return {
        name: imported(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py", known)
        for name, path in files.items()
    }


def violations(graph: Graph) -> list[str]:
    return [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if target.split(".")[0] in FORBIDDEN.get(module.split(".")[0], set())
    ]


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


GRAPH = import_graph()


def test_the_graph_covers_every_module():
    assert {"function_app", "agent_core.agents", "service.app", "service.runtime", "devtools.devserver"} <= set(GRAPH)
    assert "service.app" in GRAPH["function_app"]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str):
    assert [v for v in violations(GRAPH) if v.startswith(package)] == []


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def test_the_checks_see_local_type_only_and_relative_imports(tmp_path: Path):
    """The rules fail on the imports they are there for, wherever the import statement hides."""
    write(
        tmp_path,
        {
            "agent_core/__init__.py": "",
            "agent_core/a.py": "def f():\n    from agent_core import b\n",
            "agent_core/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\n",
            "agent_core/c.py": "import agent_core.a\n",
            "service/__init__.py": "",
            "service/x.py": "def g():\n    import devtools.tool\n",
            "devtools/__init__.py": "",
            "devtools/tool.py": "from service import x\n",
        },
    )
    graph = import_graph(tmp_path, ("agent_core", "service", "devtools"))
    assert cycles(graph) == [["agent_core.a", "agent_core.b", "agent_core.c"], ["devtools.tool", "service.x"]]
    assert violations(graph) == ["service.x imports devtools.tool"]


# --- the deployment package --------------------------------------------------------------------------


def deployed_files() -> list[str]:
    """What `func azure functionapp publish` / azd would upload: the repository's files minus .funcignore."""
    spec = pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text().splitlines())
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return sorted(path for path in tracked.splitlines() if not spec.match_file(path))


DEPLOYED = deployed_files()
LOCAL_ONLY_DIRS = ("devtools/", "tests/", "bench/", "docs/", "examples/", "infra/", "scripts/", ".github/", ".ci/")


def test_the_package_holds_the_service():
    assert {"function_app.py", "host.json", "requirements.txt", "service/app.py", "agent_core/agents.py"} <= set(
        DEPLOYED
    )
    assert {path.split("/")[0] for path in DEPLOYED if "/" in path} == {"agent_core", "service"}


@pytest.mark.parametrize("directory", LOCAL_ONLY_DIRS)
def test_nothing_local_is_deployed(directory: str):
    assert [path for path in DEPLOYED if path.startswith(directory)] == []


@pytest.mark.parametrize(
    "path",
    [
        "local.settings.json",
        "local.settings.sample.json",
        "requirements-dev.txt",
        ".venv/bin/python",
        "node_modules/azurite/package.json",
        ".azurite/__azurite_db_table__.json",
        "service/__pycache__/app.cpython-311.pyc",
    ],
)
def test_local_files_are_ignored(path: str):
    """Files a local run leaves behind (untracked, so not in the listing above) stay out too."""
    spec = pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text().splitlines())
    assert spec.match_file(path)


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(line.split("==")[0].strip().lower())
    return names


def test_local_tools_are_only_dev_requirements():
    """Deployed code imports nothing that only the dev requirements install (uvicorn, croniter, pytest...)."""
    runtime = requirement_names(ROOT / "requirements.txt")
    dev_only = requirement_names(ROOT / "requirements-dev.txt") - runtime
    assert {"uvicorn", "croniter", "pathspec", "pytest"} <= dev_only
    distributions = importlib.metadata.packages_distributions()
    for path in (p for p in DEPLOYED if p.endswith(".py")):
        for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in OURS:
                    continue
                provided_by = {d.lower() for d in distributions.get(top, [])}
                assert provided_by, f"{path} imports {name}, which no installed distribution provides"
                assert not provided_by <= dev_only, f"{path} imports {name}, a dev requirement"
