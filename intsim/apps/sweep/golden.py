"""The ``golden`` kind: one golden suite's cases sharded over the workers, one case per point,
assembled into ``DIR/suite`` byte-identical to ``intsim golden generate``."""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...core.errors import ConfigError
from ...core.fileio import atomic_directory
from .kinds import Plan, PointResult, SweepKind, SweepSpec
from .params import Param, check_str
from .store import SUITE

__all__ = ["GoldenKind"]


@functools.lru_cache(maxsize=4)
def _golden_doc(text: bytes) -> dict[str, Any]:
    return tomllib.loads(text.decode("utf-8"))


class GoldenKind(SweepKind):
    """One golden suite (``spec``: its TOML file, relative to the sweep spec) sharded over the
    workers, one case per point; ``DIR/suite`` is then byte-identical to ``intsim golden generate
    SPEC --out DIR/suite``. Each task generates its case as a one-case suite with the suite's name
    and seed (so the case's seed and files are the same); the driver assembles the manifest.
    Figures: ``operator``, ``seed``, ``raises`` (JSON or empty), ``files`` and ``bytes``."""

    name = "golden"
    summary = "one golden suite's cases sharded over the workers"
    params = (Param("spec", None, "the golden suite spec (TOML), relative to the sweep spec", check_str, axis=False),)

    def plan(self, grid: dict[str, list[Any]], spec: SweepSpec) -> Plan:
        from ...golden.spec import load_spec

        if grid.get("spec") is None or grid["spec"] == [None]:
            raise ConfigError(f"{spec.source}: grid.spec: a golden sweep needs the suite's spec file")
        path = spec.resolve(grid["spec"][0], "grid.spec")
        suite = load_spec(path)  # validates every case, with the caps, before anything runs
        assert suite.text is not None
        points = [{"case": c.name} for c in suite.cases]
        shared = {"text": suite.text, "source": str(path), "name": suite.name, "seed": suite.seed,
                  "description": suite.description}
        return Plan(self, points, ["case"], shared, {"spec_sha256": hashlib.sha256(suite.text).hexdigest()},
                    spec.source)

    def compute(self, params: dict[str, Any], shared: dict[str, Any]) -> PointResult:
        from ...golden.spec import spec_from_dict
        from ...golden.suite import MANIFEST, generate_suite

        doc = _golden_doc(shared["text"])
        raw = next(c for c in doc["case"] if c.get("name") == params["case"])
        one = spec_from_dict({"suite": doc.get("suite", {}), "case": [raw]}, source=shared["source"])
        with tempfile.TemporaryDirectory(prefix="intsim-sweep-golden-") as d:
            generate_suite(one, Path(d) / "s")
            root = Path(d) / "s"
            manifest = json.loads((root / MANIFEST).read_bytes())
            blobs = {rel: (root / rel).read_bytes() for rel in sorted(manifest["files"])}
        (case,) = manifest["cases"]
        head = {k: manifest[k] for k in ("format", "format_version", "generator", "hex_format")}
        blobs[".case.json"] = json.dumps({"case": case, "head": head}, sort_keys=True).encode()
        return PointResult({"operator": case["operator"], "seed": case["seed"],
                            "raises": json.dumps(case["raises"], sort_keys=True) if case.get("raises") else "",
                            "files": len(manifest["files"]), "bytes": sum(len(b) for b in blobs.values())},
                           blobs)

    def finish(self, out: Path, plan: Plan, results: list[PointResult], progress: Callable[[str], None]) -> list[str]:
        from ...golden.suite import MANIFEST, SPEC_COPY, manifest_bytes, suite_listing

        progress(f"assembling the golden suite {out / SUITE}")
        shared = plan.shared
        cases: list[dict[str, Any]] = []
        files: dict[str, dict[str, Any]] = {}
        head: dict[str, Any] = {}
        with atomic_directory(out / SUITE, force=True, owned=suite_listing, record=False) as tmp:
            _write_new(tmp / SPEC_COPY, shared["text"], files, SPEC_COPY)
            for r in results:
                meta = json.loads(r.blobs[".case.json"])
                head = meta["head"]
                cases.append(meta["case"])
                for rel, data in r.blobs.items():
                    if rel != ".case.json":
                        _write_new(tmp / rel, data, files, rel)
            manifest: dict[str, Any] = {**head, "suite": {"name": shared["name"], "seed": shared["seed"],
                                                          "description": shared["description"]},
                                        "spec": SPEC_COPY, "cases": cases, "files": files}
            body = manifest_bytes(manifest)
            manifest["content_sha256"] = hashlib.sha256(body).hexdigest()
            _write_new(tmp / MANIFEST, manifest_bytes(manifest), None, MANIFEST)
        return [f"{SUITE}/{rel}" for rel in sorted([*files, MANIFEST])]


def _write_new(path: Path, data: bytes, files: dict[str, dict[str, Any]] | None, rel: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "xb") as fh:  # inside a directory built aside (atomic_directory)
        fh.write(data)
    if files is not None:
        files[rel] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
