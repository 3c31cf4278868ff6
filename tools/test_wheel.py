"""Run the test suite against an installed mimo-ggml (a wheel), not the source tree.

    python tools/test_wheel.py [PROJECT_DIR] [pytest args...]

Copies PROJECT_DIR/tests to a temporary folder outside the checkout, checks
that ``mimo_ggml`` imports from site-packages (with its bundled ggml), prints
``mimo-ggml info``, and runs pytest there. cibuildwheel's test-command and the
local wheel check (tools/build_wheel.sh) both use it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main(argv: list[str]) -> int:
    project = Path(argv[0] if argv else Path(__file__).resolve().parents[1]).resolve()
    extra = argv[1:]
    with tempfile.TemporaryDirectory(prefix="mimo-wheel-tests-") as tmp:
        tests = Path(tmp) / "tests"
        shutil.copytree(project / "tests", tests, ignore=shutil.ignore_patterns("__pycache__"))
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        probe = ("import json, mimo_ggml, mimo_ggml._core as c; from mimo_ggml.system import system_info; "
                 "i = system_info(); print(json.dumps({'module': mimo_ggml.__file__, 'version': i.get('version'), "
                 "'cpu_variant': i.get('cpu_variant'), 'backends': i.get('backends'), 'build': i.get('build'), "
                 "'advice': i.get('advice')}))")
        out = subprocess.run([sys.executable, "-c", probe], cwd=tmp, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout, out.stderr, file=sys.stderr)
            return out.returncode
        info = json.loads(out.stdout.strip().splitlines()[-1])
        print("installed mimo-ggml:", json.dumps(info, indent=2))
        # the source package (python/mimo_ggml), not a venv that happens to sit inside the checkout (CI's)
        if Path(info["module"]).resolve().is_relative_to(project / "python"):
            print(f"error: mimo_ggml was imported from the source tree ({info['module']})", file=sys.stderr)
            return 3
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", tmp, str(tests), *extra]
        print("+", " ".join(cmd), flush=True)
        return subprocess.call(cmd, cwd=tmp, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
