"""Artifacts: a folder with `config.json`, `*.safetensors` weights and a sha256 `manifest.json`.

Loading verifies every hash and refuses a mismatch. No pickles, ever.

>>> import tempfile, torch
>>> d = tempfile.mkdtemp() + "/a"
>>> _ = save_artifact(d, kind="demo", config={"h": 1}, tensors={"weights": {"w": torch.ones(2)}})
>>> load_artifact(d).tensors["weights"]["w"].tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinical_mborl import __version__
from clinical_mborl.core.errors import ArtifactError
from clinical_mborl.core.io import atomic_directory, sha256_file
from clinical_mborl.core.models import StrictModel

MANIFEST = "manifest.json"
CONFIG = "config.json"
ARTIFACT_SCHEMA_VERSION = 1


class ArtifactManifest(StrictModel):
    """What an artifact folder holds and what it was made from."""

    schema_version: int = ARTIFACT_SCHEMA_VERSION
    kind: str
    files: dict[str, str]
    cohort_manifest_hash: str | None = None
    seed: int | None = None
    package_version: str = __version__
    versions: dict[str, str] = {}
    git_sha: str | None = None
    metadata: dict[str, Any] = {}
    # where the numbers were computed: torch's intra-op threads and the CPU. Results are bit-identical
    # only for the same seed, thread count and CPU type (a float sum's order follows the threads).
    compute: dict[str, str] = {}


@dataclass(frozen=True)
class LoadedArtifact:
    manifest: ArtifactManifest
    config: dict[str, Any]
    tensors: dict[str, dict[str, Any]]
    extras: dict[str, Any]
    path: Path


def library_versions() -> dict[str, str]:
    import numpy
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    try:
        import pytorch_lightning

        out["pytorch_lightning"] = pytorch_lightning.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def compute_environment() -> dict[str, str]:
    """torch's intra-op thread count, its CPU kernel level and the CPU model, when called.

    Two runs with the same seed give the same weights only when these match: with another thread
    count a float reduction adds in another order, and another CPU type takes other kernels.
    """
    import torch

    return {"torch_threads": str(torch.get_num_threads()),
            "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
            "cpu_model": _cpu_model(), "machine": platform.machine()}


def git_sha() -> str | None:
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def save_artifact(
    path: str | Path,
    *,
    kind: str,
    config: Mapping[str, Any],
    tensors: Mapping[str, Mapping[str, Any]],
    extras: Mapping[str, Any] | None = None,
    cohort_manifest_hash: str | None = None,
    seed: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> ArtifactManifest:
    """Write an artifact folder atomically.

    `tensors` maps a file stem to a dict of named torch tensors (one `<stem>.safetensors` each);
    `extras` maps a file stem to JSON-serialisable data (`<stem>.json`, e.g. metrics).
    The manifest's `compute` records the thread count and CPU at save time; every clinical-mborl
    command saves in the thread setting it trained in.
    """
    from safetensors.torch import save_file

    with atomic_directory(path) as tmp:
        (tmp / CONFIG).write_text(json.dumps(dict(config), indent=2, sort_keys=True, default=str))
        for stem, named in tensors.items():
            contiguous = {k: v.detach().cpu().contiguous() for k, v in named.items()}
            save_file(contiguous, str(tmp / f"{stem}.safetensors"))
        for stem, data in (extras or {}).items():
            (tmp / f"{stem}.json").write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = ArtifactManifest(
            kind=kind,
            files=files,
            cohort_manifest_hash=cohort_manifest_hash,
            seed=seed,
            versions=library_versions(),
            git_sha=git_sha(),
            metadata=dict(metadata or {}),
            compute=compute_environment(),
        )
        (tmp / MANIFEST).write_text(manifest.model_dump_json(indent=2))
    return manifest


def read_manifest(path: str | Path) -> ArtifactManifest:
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise ArtifactError(
            f"artifact {path}: no {MANIFEST}; expected a folder written by clinical-mborl "
            "(config.json, *.safetensors, manifest.json). Re-run the training command."
        )
    try:
        return ArtifactManifest.model_validate_json(mpath.read_text())
    except ValueError as exc:
        raise ArtifactError(f"artifact {path}: {MANIFEST} is not a valid manifest ({exc.__class__.__name__})") from exc


def verify_artifact(path: str | Path, expected_kind: str | None = None) -> ArtifactManifest:
    """Check every file's sha256 against the manifest; refuse extra or missing files."""
    path = Path(path)
    manifest = read_manifest(path)
    if expected_kind is not None and manifest.kind != expected_kind:
        raise ArtifactError(
            f"artifact {path}: expected kind '{expected_kind}', got '{manifest.kind}'; pass the right folder."
        )
    present = {p.name for p in path.iterdir() if p.is_file() and p.name != MANIFEST}
    missing = sorted(set(manifest.files) - present)
    extra = sorted(present - set(manifest.files))
    if missing or extra:
        raise ArtifactError(
            f"artifact {path}: files differ from manifest (missing {missing}, unexpected {extra}); "
            "the folder was edited after it was written. Re-create it."
        )
    bad = [name for name, digest in manifest.files.items() if sha256_file(path / name) != digest]
    if bad:
        raise ArtifactError(
            f"artifact {path}: sha256 mismatch for {bad}; the files changed after they were written. "
            "Refusing to load; re-create the artifact."
        )
    return manifest


def load_artifact(path: str | Path, expected_kind: str | None = None) -> LoadedArtifact:
    """Verify hashes, then read config, safetensors weights and JSON extras."""
    from safetensors.torch import load_file

    path = Path(path)
    manifest = verify_artifact(path, expected_kind)
    config = json.loads((path / CONFIG).read_text())
    tensors: dict[str, dict[str, Any]] = {}
    extras: dict[str, Any] = {}
    for name in manifest.files:
        if name.endswith(".safetensors"):
            tensors[name.removesuffix(".safetensors")] = load_file(str(path / name))
        elif name.endswith(".json") and name != CONFIG:
            extras[name.removesuffix(".json")] = json.loads((path / name).read_text())
    return LoadedArtifact(manifest=manifest, config=config, tensors=tensors, extras=extras, path=path)
