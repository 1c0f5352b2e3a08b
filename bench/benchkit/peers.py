"""DVC and GTO in a venv of their own (``bench/.work/peers``), kept between runs.

They are installed from PyPI with pip, never into modelbox's environment: their pins
(pydantic, fsspec, dulwich...) must not change what modelbox runs with.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchkit.harness import BENCH

REQUIREMENTS = ("dvc", "dvc-s3", "gto")
VENV = BENCH / ".work" / "peers"
_STAMP = VENV / "bench-peers.json"  # written last: its presence means a complete install


@dataclass(frozen=True)
class Peers:
    bin: Path
    versions: dict[str, str]

    def exe(self, name: str) -> str:
        return str(self.bin / name)

    def describe(self) -> str:
        return ", ".join(f"{name} {version}" for name, version in self.versions.items())


def ensure(*, refresh: bool, timeout: float | None) -> tuple[Peers | None, str]:
    """The peers venv, installing it if needed: ``(peers, "")`` or ``(None, reason)``."""
    if not refresh and _STAMP.exists() and (VENV / "bin" / "dvc").exists():
        try:
            stamp = json.loads(_STAMP.read_text())
            if stamp.get("requirements") == list(REQUIREMENTS):
                return Peers(VENV / "bin", stamp["versions"]), ""
        except (OSError, ValueError, KeyError):
            pass  # a damaged stamp: install again
    shutil.rmtree(VENV, ignore_errors=True)
    print(f"installing peers into {VENV}: pip install {' '.join(REQUIREMENTS)}",
          file=sys.stderr, flush=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check", *REQUIREMENTS]
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True,
                       capture_output=True, timeout=timeout)
        subprocess.run(pip, check=True, capture_output=True, timeout=timeout, text=True)
        probe = ("import importlib.metadata as m, json, sys;"
                 "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
        versions = json.loads(subprocess.run(
            [str(VENV / "bin" / "python"), "-c", probe, *REQUIREMENTS],
            check=True, capture_output=True, text=True, timeout=60).stdout)
    except subprocess.TimeoutExpired:
        return None, f"pip install did not finish in {timeout:.0f} s"
    except subprocess.CalledProcessError as error:
        tail = (error.stderr or "").strip().splitlines()[-1:] if isinstance(
            error.stderr, str) else []
        return None, f"`{' '.join(map(str, error.cmd[:4]))}...` failed: {' '.join(tail)}"
    except OSError as error:
        return None, str(error)
    _STAMP.write_text(json.dumps({"requirements": list(REQUIREMENTS), "versions": versions},
                                 indent=2) + "\n")
    return Peers(VENV / "bin", versions), ""


def dvc_env(base: dict[str, str], work: Path) -> dict[str, str]:
    """DVC with its defaults, minus what would phone home (analytics, update checks)."""
    config = work / "dvc-global"
    config.mkdir(exist_ok=True)
    (config / "config").write_text("[core]\n    analytics = false\n    check_update = false\n")
    return {
        **base,
        "DVC_NO_ANALYTICS": "1",
        "DVC_STUDIO_OFFLINE": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(config),
        "DVC_SYSTEM_CONFIG_DIR": str(work / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(work / "dvc-site"),
        "PATH": os.pathsep.join([str(VENV / "bin"), base.get("PATH", os.defpath)]),
    }
