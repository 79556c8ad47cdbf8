"""`make install`'s editable install (`pip install -e .`) builds without a setuptools warning.

pip builds the project in an isolated environment with the newest setuptools, as `make install`
does, into a throw-away virtualenv (no dependencies: only the build itself is looked at), from a
copy of the project so the work tree is left alone.
"""

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["activities", "api", "cli", "clients", "domain", "models", "store", "workers", "workflows"]
# What setuptools' warnings look like in pip's output (BuildBackendWarning, SetuptoolsDeprecationWarning…);
# pip's own notices are "WARNING: …".
BACKEND_WARNING = re.compile(r"\b[A-Z][A-Za-z]*Warning\b")


def test_the_editable_install_prints_no_setuptools_warning(tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-e", str(project)]
        + ["-e", str(project / "clients" / "python")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert not BACKEND_WARNING.search(out), out[-3000:]
    # and the install works: the service's packages import from the project, data files included
    check = (
        "import api, workflows, store, importlib.util\n"
        "from pathlib import Path\n"
        "assert importlib.util.find_spec('ticketflow_client'), 'the typed client is not installed'\n"
        "print(Path(api.__file__).parent)"
    )
    where = subprocess.run([str(python), "-c", check], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()) == project / "api"
    assert (project / "api" / "static" / "dashboard" / "index.html").is_file()
    assert (project / "api" / "static" / "console" / "index.html").is_file()
