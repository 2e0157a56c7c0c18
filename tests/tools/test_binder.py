"""The JupyterHub/Binder environment (`binder/`, read by repo2docker): the pinned CPU torch, and a start script that
keeps the hub offline and the learner's workspace on the persistent home."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from curriculum.tools.paths import COURSE_ROOT as REPO_ROOT

BINDER = REPO_ROOT / "binder"


def test_requirements_pin_the_cpu_build_of_the_torch_the_course_is_tested_with():
    lines = [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    tested = importlib.metadata.version("torch").split("+")[0]
    assert f"torch=={tested}+cpu" in lines
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    post_build = (BINDER / "postBuild").read_text()
    assert 'pip install --no-cache-dir ".[jupyter]"' in post_build and "-e" not in post_build.split()
    assert os.access(BINDER / "postBuild", os.X_OK) and os.access(BINDER / "start", os.X_OK)


def test_start_sets_the_hub_offline_and_starts_every_day_in_the_persistent_home(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("MECHINTERP_WORKSPACE", "HF_HUB_OFFLINE")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(REPO_ROOT))
    command = [str(BINDER / "start"), "sh", "-c", 'echo "$HF_HUB_OFFLINE $MECHINTERP_WORKSPACE"']
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    workspace = tmp_path / "mechinterp-course"
    assert first.stdout.split() == ["1", str(workspace)]
    days = sorted(path.name for path in (REPO_ROOT / "curriculum").glob("day*_*.py"))
    assert sorted(path.name for path in workspace.glob("*.py")) == days
    assert len(list(workspace.glob("*.ipynb"))) == len(days)

    mine = workspace / days[0]
    mine.write_text(mine.read_text() + "\n# my work\n")
    (workspace / days[1]).unlink()  # a learner starting a day afresh removes their copy of it
    (workspace / days[1]).with_suffix(".ipynb").unlink()
    again = subprocess.run(command, env={**env, "MECHINTERP_WORKSPACE": str(tmp_path / "elsewhere")},
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert again.stdout.split() == ["1", str(tmp_path / "elsewhere")]  # a hub's own choice is kept
    third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert third.returncode == 0
    assert mine.read_text().endswith("# my work\n")  # never overwritten
    assert (workspace / days[1]).is_file()  # started afresh
