"""A golden suite of the quantized all-MiniLM-L6-v2 (``intsim golden from-onnx``) verifies bit for bit,
and the MAC array template reproduces its GEMM cases in RTL simulation."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from intsim.golden import cli, verify_suite  # noqa: E402
from intsim.golden.from_onnx import suite_from_onnx  # noqa: E402
from intsim.golden.templates import TEMPLATES, run_suite  # noqa: E402


def _have_model() -> bool:
    from intsim.models.store import model_available

    return model_available()


pytestmark = pytest.mark.skipif(not _have_model(), reason="the MiniLM model is missing: intsim model fetch")


@pytest.fixture(scope="module")
def minilm_suite(tmp_path_factory):
    """The dynamically quantized MiniLM (uint8 weights) on one short sentence: one matmul case per
    integer GEMM node (36: the six linear layers of each of the six encoder layers)."""
    from intsim.onnx.minilm import minilm_feeds, minilm_onnx, quantize_minilm

    tmp = tmp_path_factory.mktemp("onnx_rtl")
    fp = minilm_onnx(tmp / "minilm.onnx")
    qp = quantize_minilm(fp, tmp / "minilm_dyn.onnx", form="dynamic", weight_type="u8")
    out = tmp / "suite"
    suite_from_onnx(qp, minilm_feeds(["Cats sleep."]), out)
    return out


def test_the_minilm_suite_verifies(minilm_suite):
    cases = json.loads((minilm_suite / "manifest.json").read_text())["cases"]
    assert len(cases) == 36 and {c["operator"] for c in cases} == {"matmul"}
    assert verify_suite(minilm_suite).ok


def test_the_mac_array_reproduces_the_minilm_gemms(sim, build_cache, minilm_suite, tmp_path, capsys):
    """Encoder layer 0's query projection and FFN down projection (K = 384 and 1536) in RTL: every
    output and overflow tap bit-identical (every GEMM of the model: INTSIM_EXHAUSTIVE=1)."""
    mac = TEMPLATES["mac_array"]
    cases = json.loads((minilm_suite / "manifest.json").read_text())["cases"]
    layer0 = [c["name"] for c in mac.cases(cases) if "layer.0" in c["name"]]
    assert len(layer0) == 6
    if os.environ.get("INTSIM_EXHAUSTIVE") == "1":
        layer0 = [c["name"] for c in mac.cases(cases)]
    else:
        layer0 = [n for n in layer0 if "query" in n or "output_dense" in n and "attention" not in n]
        assert len(layer0) == 2, layer0
    dumps = tmp_path / "dumps"
    names = run_suite(minilm_suite, mac, dumps, sim=sim, cache_dir=build_cache, cases=layer0)
    assert names == layer0
    args = ["compare", str(minilm_suite), "--dut", str(dumps)]
    for n in names:
        args += ["--case", n]
    code = cli.main(args)
    out = capsys.readouterr().out
    assert code == 0 and f"{len(names)} passed, 0 failed" in out, out
