"""A one-node Slurm cluster on localhost for the sweep tests (``.ci/slurm-localhost.sh``).

``ensure_cluster()`` returns None when a cluster answers (starting one if Slurm is installed
and we are root), else the reason it cannot; the tests skip with that reason, and fail under
CI (``CI`` set), where ``.ci/run`` installs Slurm first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "slurm-localhost.sh"


def _node_up() -> bool:
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                           timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and any(s.strip() in ("idle", "mixed", "allocated")
                                     for s in r.stdout.split())


def ensure_cluster() -> str | None:
    missing = [t for t in ("sbatch", "sinfo", "slurmctld", "slurmd", "munged")
               if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} missing): apt-get install "
                "slurm-wlm munge")
    if _node_up():
        return None
    if os.geteuid() != 0:
        return f"no Slurm cluster answers and starting one needs root ({SCRIPT})"
    r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=180)
    if r.returncode != 0 or not _node_up():
        return f"{SCRIPT} could not start a one-node cluster: {r.stderr.strip()[-300:]}"
    return None
