"""Guard rails of the layout (README, "Architecture"): a line budget, the import
layering, and a CUDA path that loads none of the CPU machinery."""
import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "minicnn"
MAX_LINES = 450


def sources():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def package_size():
    """(total lines, files, the largest file and its lines) of minicnn/*.py."""
    sizes = {p: len(p.read_text().splitlines()) for p in sources()}
    largest = max(sizes, key=sizes.get)
    return sum(sizes.values()), len(sizes), largest.relative_to(REPO), sizes[largest]


def test_no_source_file_is_over_the_line_budget():
    over = {str(p.relative_to(REPO)): n for p in sources()
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not over, f"over {MAX_LINES} lines (split them where a reader would): {over}"


def imported_modules(path):
    """Absolute names of the minicnn modules that ``path`` imports."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + "." + "__init__"
    parts = package.split(".")[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = parts[:len(parts) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                names.add(f"{module}.{alias.name}" if not node.module or node.level else module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("minicnn")}


def layer_of(module):
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("layers", "ops", "backend", "models"):
        return parts[1]
    return None


def test_imports_respect_the_layering():
    """layers -> ops and the public backend face; ops -> devices; devices -> neither."""
    problems = []
    for path in sources():
        me = layer_of(".".join(path.relative_to(REPO).with_suffix("").parts))
        for name in imported_modules(path):
            other = layer_of(name)
            if me == "backend" and other in ("ops", "layers", "models"):
                problems.append(f"{path.relative_to(REPO)} (a device module) imports {name}")
            if me == "ops" and other in ("layers", "models"):
                problems.append(f"{path.relative_to(REPO)} (an op) imports {name}")
            if me == "layers" and other == "backend" and name.count(".") > 2:
                problems.append(f"{path.relative_to(REPO)} (a layer) imports the device internals {name}")
            if me == "layers" and other == "models":
                problems.append(f"{path.relative_to(REPO)} (a layer) imports {name}")
    assert not problems, "\n".join(problems)


def test_the_cuda_path_loads_no_cpu_machinery():
    script = """
import sys
import numpy as np
from minicnn import backend, layers
from minicnn.models import Sequential
backend.set_backend("emulator")
m = Sequential([layers.Conv2D(2, 3, activation="relu", input_shape=(6, 6, 1)), layers.MaxPooling2D(2),
                layers.Flatten(), layers.Dense(3, activation="softmax")])
m.compile("rmsprop", "categorical_crossentropy", metrics=["accuracy"])
m.fit(np.random.default_rng(0).random((8, 6, 6, 1)), np.eye(3)[np.arange(8) % 3], verbose=0)
loaded = sorted(n for n in sys.modules if n in ("numba", "llvmlite") or n.startswith("minicnn.backend.cpu"))
print(loaded)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=True).stdout.strip().splitlines()[-1]
    assert out == "[]", out
