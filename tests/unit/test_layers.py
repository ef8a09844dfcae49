"""The layers of the tree, and the one direction their imports run in: a module may import
its own layer and the layers below it, never one above. Read from the source with `ast`,
so the rule holds whether or not a test happens to import a module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Lowest first. A module of a layer may import from its own layer and from those before it.
LAYERS = (
    ("service.domain",),
    ("service.observability",),
    ("service.usecases",),
    ("service.adapters",),
    ("service.bootstrap",),
    ("service.entrypoints", "app"),
)
# Libraries that belong to one place only (besides the composition root and app.py).
OWNERS = {
    "flask": ("service.entrypoints",),
    "werkzeug": ("service.entrypoints",),
    "gunicorn": ("service.entrypoints",),
    "click": ("service.entrypoints",),
    "marshmallow": ("schemas", "service.entrypoints"),
    "apispec": ("service.entrypoints.http",),
    "psycopg": ("service.adapters.postgres", "service.bootstrap"),
    "psycopg_pool": ("service.adapters.postgres",),
    "redis": ("service.adapters.redis", "service.bootstrap"),
    "prometheus_client": ("service.observability",),
}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "service").rglob("*.py"))]


def imported(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if layer_of(node.module) is None:  # `from service import usecases` names a layer
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def layer_of(name: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if within(name, prefixes):
            return rank
    return None


def violations(path: Path, root: Path = ROOT) -> list[str]:
    me = module_name(path, root)
    rank = layer_of(me)
    found = []
    for target in sorted(imported(path)):
        their = layer_of(target)
        if rank is not None and their is not None and their > rank:
            found.append(f"{me} imports {target}, a higher layer")
        library = target.split(".")[0]
        owners = OWNERS.get(library)
        if owners and me != "app" and not within(me, owners):
            found.append(f"{me} imports {library}, which belongs to {' or '.join(owners)}")
    return found


def test_every_module_of_the_service_sits_in_a_layer():
    outside = [module_name(p) for p in sources() if layer_of(module_name(p)) is None]
    assert outside == ["service"]  # the package itself, a docstring


@pytest.mark.parametrize("path", sources(), ids=lambda path: module_name(path))
def test_imports_run_down_the_layers_and_libraries_stay_in_their_place(path):
    assert violations(path) == []


def test_schemas_know_the_domain_at_most():
    for path in sorted((ROOT / "schemas").rglob("*.py")):
        for target in imported(path):
            assert not within(target, ("service", "app")) or within(target, ("service.domain",))


def test_the_check_finds_a_lower_layer_importing_a_higher_one(tmp_path):
    """The rule can fail: a domain module that imports a use case is reported."""
    package = tmp_path / "service" / "domain"
    package.mkdir(parents=True)
    offender = package / "leaky.py"
    offender.write_text(
        "import flask\n"
        "from service.usecases.figures import usage_for_range\n"
        "def lazily():\n"
        "    from service import adapters\n"
    )
    assert violations(offender, tmp_path) == [
        "service.domain.leaky imports flask, which belongs to service.entrypoints",
        "service.domain.leaky imports service.adapters, a higher layer",
        "service.domain.leaky imports service.usecases.figures, a higher layer",
    ]


def fresh_interpreter(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_importing_the_app_module_builds_no_app():
    ran = fresh_interpreter(
        "import sys, app\n"
        "assert 'app' not in vars(app), 'an app was built at import'\n"
        "assert 'prometheus_client' in sys.modules\n"  # the check below can fail
    )
    assert ran.returncode == 0, ran.stderr


def test_the_console_entry_imports_no_metrics_library_before_it_settles_the_directory():
    ran = fresh_interpreter(
        "import sys, service.entrypoints.cli.main\n"
        "assert 'prometheus_client' not in sys.modules\n"
        "assert 'service.observability.metrics' not in sys.modules\n"
    )
    assert ran.returncode == 0, ran.stderr
