"""Tests of the integer-only MiniLM (intsim.models.minilm) and of the demo that runs it.

Tests that need the real model (``intsim model fetch``) go through the ``w8a8`` fixture,
which skips cleanly when it is missing; the
others (configuration checks, input-text checks, the missing-package message) run
everywhere.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intsim.apps.cli import main
from intsim.core.dyadic import Dyadic
from intsim.core.errors import ConfigError, DTypeError, ModelNotInstalledError, ShapeError
from intsim.models import minilm as mi

SHORT = ["The cat sleeps on the warm windowsill.", "Stocks fell sharply."]


def _have_model() -> bool:
    from intsim.models.store import model_available

    return model_available()


@pytest.fixture(scope="module")
def w8a8() -> mi.IntMiniLM:
    if not _have_model():
        pytest.skip("the MiniLM model is missing: intsim model fetch")
    return mi.load_int_minilm("w8a8", "ibert")


# ---------------------------------------------------------------------------------------------
# configuration and input checks (no model needed)
# ---------------------------------------------------------------------------------------------
def test_configurations_and_nonlinear_families_are_validated():
    assert mi.get_config("w8a8").act_bits == 8
    assert mi.get_config("llm-int8").linear == "llm_int8"
    with pytest.raises(ConfigError, match="valid: w8a8"):
        mi.get_config("w4a4")
    with pytest.raises(ConfigError, match="linear"):
        mi.IntConfig(linear="float")
    with pytest.raises(ConfigError, match="act_bits > 8"):
        mi.IntConfig(linear="llm_int8", act_bits=8)
    with pytest.raises(ConfigError, match="smooth"):
        mi.IntConfig(smooth=1.5)
    with pytest.raises(ConfigError, match="unknown nonlinear family 'fp32'"):
        mi.get_nonlinear("fp32")
    assert mi.available_nonlinear() == list(mi.NONLINEAR)
    assert isinstance(mi.get_nonlinear("ibert"), mi.IBertNonlinear)


def test_old_names_of_the_nonlinear_families_still_work():
    # kept for one release: the classes, tables and functions under their old names
    assert (mi.Profile, mi.IBertProfile, mi.IViTProfile, mi.ILLMProfile) == (
        mi.Nonlinear, mi.IBertNonlinear, mi.IViTNonlinear, mi.ILLMNonlinear)
    assert mi.PROFILES is mi.NONLINEAR and mi.DEFAULT_PROFILE == mi.DEFAULT_NONLINEAR == "ibert"
    assert mi.get_profile is mi.get_nonlinear and mi.available_profiles is mi.available_nonlinear
    with pytest.warns(DeprecationWarning, match="nonlinear="):
        assert mi.get_nonlinear(profile="illm").name == "illm"
    with pytest.warns(DeprecationWarning, match="nonlinear="):
        old = mi.golden_spec("w8a8", profile="ivit", tokens=8)
    assert old == mi.golden_spec("w8a8", nonlinear="ivit", tokens=8)
    assert 'config = { configuration = "w8a8", nonlinear = "ivit", layer = 0 }' in old


def test_golden_operator_accepts_the_old_config_key():
    """A suite written with config key ``profile`` (before it was ``nonlinear``) still resolves, to the
    same full configuration under the key it was written with (so its manifest still verifies)."""
    from intsim.golden import parse_spec

    text = mi.golden_spec("w8a8", "ivit", layer=2, tokens=4)
    new, = parse_spec(text).cases
    old, = parse_spec(text.replace("nonlinear =", "profile =")).cases
    assert new.config == {"configuration": "w8a8", "nonlinear": "ivit", "layer": 2}
    assert old.config == {"configuration": "w8a8", "profile": "ivit", "layer": 2}
    with pytest.raises(ConfigError, match="config.nonlinear: unknown nonlinear family 'nope'"):
        parse_spec(mi.golden_spec("w8a8", "nope", tokens=4))
    with pytest.raises(ConfigError, match="not both"):
        parse_spec(text.replace("nonlinear =", 'profile = "ibert", nonlinear ='))


@pytest.mark.parametrize("bad, err, match", [
    ([], ConfigError, "no sentences"),
    ("a single string", ConfigError, "not a single string"),
    (["fine", "   "], ConfigError, "sentence 1 is empty"),
    (["fine", ""], ConfigError, "sentence 1 is empty"),
    (["fine", 7], DTypeError, "sentence 1 is a int"),
    (None, DTypeError, "list of strings"),
])
def test_bad_input_text_is_a_clear_error(bad, err, match):
    with pytest.raises(err, match=match):
        mi.check_sentences(bad)


def test_missing_model_package_names_the_extra(monkeypatch, capsys, tmp_path):
    import intsim_reference.minilm as rm
    from intsim.models import loading as models
    from intsim.models import store

    monkeypatch.setattr(store, "_package_dir", lambda: None)  # no installed package, no cache, no folder given
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("INTSIM_MODEL_DIR", raising=False)
    monkeypatch.setattr(rm, "default_model", lambda: rm.MiniLMReference(models.load_minilm_weights(), None))
    with pytest.raises(ModelNotInstalledError) as ei:
        mi.reference_model()
    msg = str(ei.value)
    assert "intsim model fetch" in msg and "--model-dir" in msg
    # the command line turns it into exit status 2 with the same message
    assert main(["demo", "--sentences", "2", "--config", "w8a8", "--no-report", "--shape", "8", "16", "8"]) == 2
    err = capsys.readouterr().err
    assert "ModelNotInstalledError" in err and "intsim model fetch" in err


def test_dyadic_conversion_matches_the_reference_rule():
    rng = np.random.default_rng(3)
    for v in np.exp(rng.uniform(-38, 6, 300)) * rng.choice([-1, 1], 300):
        for bits in (15, 23, 31):
            assert mi.nearest_dyadic(float(v), bits, "t") == Dyadic.from_float(float(v), bits=bits)
    assert mi.nearest_dyadic(5e-41, 23, "t") == Dyadic(1, 62)  # a dead channel keeps the smallest multiplier


# ---------------------------------------------------------------------------------------------
# the integer pass (needs the model)
# ---------------------------------------------------------------------------------------------
def _layer_reference(model: mi.IntMiniLM, sentences: list[str]) -> tuple[mi.FloatProbe, np.ndarray, np.ndarray]:
    ids, mask = mi.tokenize_sentences(sentences, 64)
    probe = mi.float_probe(model.reference, ids, mask)
    x, lens = model.embedding_output(sentences)
    return probe, model.model.quantize_input(x), lens


def test_one_layer_integer_pass_vs_float64(w8a8):
    probe, xr, lens = _layer_reference(w8a8, SHORT)
    ref0 = probe.layers[0]
    # the float embedding output is the reference's layer-0 input, quantized to the residual stream
    np.testing.assert_allclose(xr * w8a8.model.s_in, ref0["x"], atol=w8a8.model.s_in / 2 + 1e-12)
    f = w8a8.model.forward(xr, lens, layers=[0])
    y = f.layer_outputs[0] * f.layer_scales[0]  # dequantized for the comparison only
    err = np.linalg.norm(y - ref0["out"], axis=1) / np.linalg.norm(ref0["out"], axis=1)
    assert err.max() < 0.08, err  # measured about 0.04 for W8A8 / I-BERT
    cos = np.einsum("ij,ij->i", y, ref0["out"]) / np.linalg.norm(y, axis=1) / np.linalg.norm(ref0["out"], axis=1)
    assert cos.min() > 0.995
    # bit-exact and deterministic: the same integers again, and the layer output feeds layer 1
    g = w8a8.model.forward(xr, lens, layers=[0])
    assert np.array_equal(f.residual, g.residual) and f.residual.dtype.kind == "i"
    assert not f.overflows
    two = w8a8.model.forward(xr, lens, layers=[0, 1])
    assert np.array_equal(two.layer_outputs[0], f.layer_outputs[0])
    assert np.array_equal(two.layer_outputs[1], w8a8.model.forward(f.residual, lens, layers=[1]).layer_outputs[0])


def test_integer_path_sees_integers_only(w8a8):
    _, xr, lens = _layer_reference(w8a8, SHORT[:1])
    xr = xr.astype(np.int16)  # an integer-only input
    f = w8a8.model.forward(xr, lens)
    kinds = {e.dtype for e in f.trace}
    assert all(np.dtype(d).kind in "iu" for d in kinds), kinds
    steps = {(e.layer, e.step) for e in f.trace}
    for li in range(6):  # every kind of step of every layer went through the checkpoint
        for step in ("xr", "rq_in", "q_proj", "scores", "softmax", "attn_v", "rq_ctx", "o_proj", "res1", "ln1",
                     "ln1.bias", "rq_x1", "ffn_up", "rq_up", "gelu", "rq_act", "ffn_down", "res2", "ln2",
                     "ln2.bias", "rq_out"):
            assert (li, step) in steps, (li, step)
    assert (-2, "pooled") in steps and f.pooled.dtype == np.int64
    # every parameter of the integer pass is an integer array; every rescaling a Dyadic
    for name, p in w8a8.model.parameters().items():
        assert np.asarray(p).dtype.kind in "iu", name
    for ql in w8a8.model.layers:
        for rq in ql.requants():
            ds = rq.scale if isinstance(rq.scale, tuple) else (rq.scale,)
            assert all(isinstance(d, Dyadic) for d in ds), rq.name


def test_a_float_anywhere_in_the_pass_is_refused(w8a8, monkeypatch):
    _, xr, lens = _layer_reference(w8a8, SHORT[:1])
    with pytest.raises(DTypeError, match="step 'input'"):
        w8a8.model.forward(xr.astype(np.float64), lens, layers=[0])
    fam = w8a8.model.nonlinear
    real = fam.gelu

    def leaky_gelu(x, scale, in_bits, overflow):
        r = real(x, scale, in_bits, overflow)
        r.values = r.values * 1.0  # a float sneaks in
        return r

    monkeypatch.setattr(fam, "gelu", leaky_gelu)
    with pytest.raises(DTypeError, match="layer 0, step 'gelu'"):
        w8a8.model.forward(xr, lens, layers=[0])


def test_evaluation_names_the_nonlinear_family(w8a8):
    with pytest.warns(DeprecationWarning, match="nonlinear="):
        assert mi.load_int_minilm("w8a8", profile="ibert") is w8a8  # one cache entry for both spellings
    ev = mi.evaluate(w8a8, SHORT[:1])
    assert ev.nonlinear == ev.profile == "ibert" and ev.nonlinear_description == ev.profile_description
    assert "I-BERT" in ev.nonlinear_description
    assert w8a8.profile is w8a8.nonlinear and w8a8.model.profile is w8a8.model.nonlinear


def test_forward_input_checks(w8a8):
    _, xr, lens = _layer_reference(w8a8, SHORT[:1])
    with pytest.raises(ShapeError):
        w8a8.model.forward(xr, [int(lens[0]) + 1])
    with pytest.raises(ShapeError):
        w8a8.model.forward(xr, [])
    with pytest.raises(ConfigError, match="consecutive"):
        w8a8.model.forward(xr, lens, layers=[0, 2])
    with pytest.raises(ConfigError, match="sentence 0 is empty"):
        w8a8.embed([" "])


def test_embeddings_close_to_float64_and_unpack_is_bit_identical(w8a8):
    probe, xr, lens = _layer_reference(w8a8, SHORT)
    f = w8a8.model.forward(xr, lens)
    cos = np.einsum("ij,ij->i", f.embeddings(), probe.embeddings)
    assert cos.min() > 0.99, cos
    up4 = mi.load_int_minilm("w8a8-unpack4", "ibert")
    n0 = int(lens[0])  # one sentence keeps the per-head unpacked GEMMs few
    g = up4.model.forward(xr[:n0], lens[:1])
    f = w8a8.model.forward(xr[:n0], lens[:1])
    assert np.array_equal(f.pooled, g.pooled)  # exact GEMMs: only quantization error remains
    assert np.array_equal(f.residual, g.residual)
    assert g.unpack and all(after > before for after, before in g.unpack.values())
    assert f.ops.total("mac") < g.ops.total("mac")  # the unpacked GEMMs do more, narrower MACs
    assert ("mac", (4, 4, 32)) in g.ops and ("mac", (8, 8, 32)) in f.ops


def test_llm_int8_configuration(w8a8):
    model = mi.IntMiniLM("llm-int8", "ibert")
    probe, _, _ = _layer_reference(w8a8, SHORT)
    x, lens = model.embedding_output(SHORT)
    f = model.model.forward(model.model.quantize_input(x), lens)
    cos = np.einsum("ij,ij->i", f.embeddings(), probe.embeddings)
    assert cos.min() > 0.99, cos
    assert ("mac", (16, 16, 48)) in f.ops and ("mac", (8, 8, 32)) in f.ops  # both halves of the decomposition
    work, base, n_out, cols = (sum(v[i] for v in f.llm_int8.values()) for i in range(4))
    assert 0 < n_out < cols and work == pytest.approx(base * (1 + 3 * n_out / cols), rel=0.5)


def test_illm_family_quantizes_linear_inputs_per_token(w8a8):
    """DI-MatMul: each token of a linear input gets its own range, the GEMM result is rescaled by
    that integer range exactly (checked with Python ints), and the whole pass stays close to float64."""
    from fractions import Fraction

    model = mi.load_int_minilm("w8a8", "illm")
    assert model.model.nonlinear.dynamic_tokens and model.nonlinear is model.model.nonlinear
    probe, xr, lens = _layer_reference(w8a8, SHORT)
    rec: dict[str, np.ndarray] = {}
    model.model.forward(xr, lens, layers=[0], record=rec)
    x16, u = rec["l0.rq_in"], rec["l0.q_proj.dynq"]
    p_min, rng, t = rec["l0.q_proj.p_min"], rec["l0.q_proj.range"], rec["l0.q_proj"]
    lin = model.model.layers[0].q
    assert x16.dtype.kind == "i" and np.abs(x16).max() < 2 ** 15 and lin.qm == 255
    assert len(np.unique(rng)) > 1  # per-token ranges, not one calibrated step
    for i in (0, 3, len(x16) - 1):  # the per-token quantization, ties to even
        row = [int(v) for v in x16[i]]
        lo, r = min(row), max(max(row) - min(row), 1)
        assert (int(p_min[i, 0]), int(rng[i, 0])) == (lo, r)
        assert [round(Fraction((v - lo) * 255, r)) for v in row] == u[i].tolist()
        for c in (0, 17, lin.w.shape[1] - 1):  # the rescaled result, exactly
            acc = sum(int(a) * int(b) for a, b in zip(u[i], lin.w[:, c], strict=True))
            assert int(t[i, c]) == acc * r + 255 * lo * int(lin.colsum[c]) + int(lin.bias[c])
    f = model.model.forward(xr, lens)
    cos = np.einsum("ij,ij->i", f.embeddings(), probe.embeddings)
    assert cos.min() > 0.99, cos
    assert not f.overflows and ("mac", (8, 8, 32)) in f.ops
    n0 = int(lens[0])  # IM-Unpack of the unsigned per-token inputs is still exact
    up4 = mi.load_int_minilm("w8a8-unpack4", "illm")
    assert np.array_equal(up4.model.forward(xr[:n0], lens[:1]).pooled, model.model.forward(xr[:n0], lens[:1]).pooled)


def test_overflow_is_reported_not_silent(w8a8):
    _, xr, lens = _layer_reference(w8a8, SHORT[:1])
    cfg = mi.IntConfig(name="narrow", acc_bits=17)  # too narrow for some q/k/v accumulators
    narrow = mi.quantize_model(w8a8.reference, w8a8.calibration, cfg, "ibert")
    f = narrow.forward(xr, lens, layers=[0])
    first = f.overflows[0]
    assert (first.layer, first.step, first.register, first.bits) == (0, "q_proj", "accumulator", 17)
    assert first.count > 0 and len(first.first_index) == 3  # (row, column, k step)
    raising = mi.quantize_model(w8a8.reference, w8a8.calibration, mi.IntConfig(acc_bits=17, overflow="raise"),
                                "ibert")
    from intsim.core.errors import AccumulatorOverflow

    with pytest.raises(AccumulatorOverflow):
        raising.forward(xr, lens, layers=[0])
    with pytest.raises(ConfigError, match="bias does not fit the 16-bit accumulator"):
        mi.quantize_model(w8a8.reference, w8a8.calibration,
                          mi.IntConfig(acc_bits=16, act_quant="static", weight_bits=12), "ibert")


def test_golden_suite_of_one_layer(w8a8, tmp_path):
    from intsim.golden import parse_spec, verify_suite
    from intsim.golden.suite import generate_suite, load_suite

    spec = parse_spec(mi.golden_spec("w8a8", "ibert", layer=1, tokens=4))
    generate_suite(spec, tmp_path / "g")
    assert verify_suite(tmp_path / "g").ok
    suite = load_suite(tmp_path / "g")
    (case,) = suite.cases
    names = [d.name for d, _, _ in case.of_role("tap")]
    assert "softmax" in names and "param_q_proj_w" in names and "param_rq_out_m" in names
    # the output is the layer run on the stored input, bit for bit
    (x_decl, x_npy, x_hex), = case.of_role("input")
    x = suite.tensor(x_decl, x_npy, x_hex)
    (y_decl, y_npy, y_hex), = case.of_role("output")
    y = suite.tensor(y_decl, y_npy, y_hex)
    assert np.array_equal(y, w8a8.model.forward(x, [4], layers=[1]).residual)


# ---------------------------------------------------------------------------------------------
# the demo
# ---------------------------------------------------------------------------------------------
def test_demo_gemm_only_and_help(capsys):
    from intsim.apps import demo

    args = argparse.Namespace(gemm_only=True, seed=3, shape=(8, 32, 8), int4_acc_bits=8)
    assert demo.run(args) == 0
    assert "bit-exact" in capsys.readouterr().out
    with pytest.raises(SystemExit) as ei:
        main(["demo", "--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--config", "--nonlinear", "--sentences", "--out", "--gemm-only"):
        assert opt in out
    assert "--profile" not in out  # the old name of --nonlinear still parses, unlisted
    p = argparse.ArgumentParser()
    demo.add_arguments(p)
    assert p.parse_args(["--profile", "illm"]).nonlinear == "illm"
    assert p.parse_args(["--nonlinear", "ivit"]).nonlinear == "ivit"
    assert p.parse_args([]).nonlinear == "ibert"
    assert demo._args_with_defaults(argparse.Namespace(profile="illm")).nonlinear == "illm"


def test_demo_writes_the_report(w8a8, tmp_path, capsys):
    out = tmp_path / "minilm"
    code = main(["demo", "--sentences", "2", "--config", "w8a8", "--out", str(out), "--no-golden",
                 "--shape", "8", "32", "8", "-q"])
    cap = capsys.readouterr()
    text = cap.out
    assert "%" not in cap.err  # -q: no progress bar
    assert "w8a8" in text and "PASS: GEMM datapath check" in text
    assert code == 0, text  # two sentences: every check passes (the cosine check says it is not the full set)
    for name in ("README.md", "results.csv", "layer_errors.csv", "layer_errors.png", "op_counts.csv",
                 "overflows.csv", "cosine.csv"):
        assert (out / name).is_file(), name
    rows = (out / "results.csv").read_text().splitlines()
    assert rows[0].startswith("configuration,nonlinear,evaluation_mean,evaluation_min") and rows[1].startswith(
        "w8a8,ibert,")
    cos_mean = float(rows[1].split(",")[2])
    assert 0.99 < cos_mean <= 1.0 and math.isfinite(cos_mean)
    readme = (out / "README.md").read_text()
    for section in ("## By kind of text", "## The worst 10 sentences", "## Every sentence of reference/sentences.py",
                    "## Calibration", "Spearman"):
        assert section in readme, section
    assert "not the acceptance figures" in text  # a quick run says so
    assert (out / "layer_errors.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_refuses_to_replace_an_unrelated_directory(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path), "--sentences", "1", "--shape", "8", "16", "8"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["demo", "--out", str(tmp_path), "--force", "--sentences", "1", "--shape", "8", "16", "8"]) == 2
    assert "refusing to replace" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_demo_writes_outside_the_tracked_tree_by_default_and_replaces_only_with_force():
    from intsim.apps import demo

    p = argparse.ArgumentParser()
    demo.add_arguments(p)
    a = p.parse_args([])
    assert a.out == "intsim-out/minilm" and not a.force and not a.quiet and not a.no_plots
    root = Path(__file__).resolve().parents[1]
    ignored = (root / ".gitignore").read_text().split()
    assert "intsim-out/" in ignored  # a run from the repository's root leaves git status clean


# ---------------------------------------------------------------------------------------------
# the I-LLM family's GELU (tanh form with DI-Exp's sigmoid): bit-exact against Python ints
# ---------------------------------------------------------------------------------------------
def _illm_gelu_oracle(x: int, scale: float) -> int:
    import math
    from fractions import Fraction

    from intsim.core.dyadic import Dyadic
    from intsim.oracles import illm as orc

    d = Dyadic.from_float(0.044715 * scale * scale, bits=16)
    c = Fraction(x ** 3 * d.m, 2 ** d.k)
    z = max(-(2 ** 31 - 1), min(2 ** 31 - 1, x + round(c)))  # Python's round of a Fraction: half to even
    me, ke = orc.row_dyadic(2.0 * math.sqrt(2.0 / math.pi) * scale, 8)
    e = orc.di_exp(-abs(z), me, ke, 15)
    sig = round(Fraction((2 ** 15 if z >= 0 else e) * 2 ** 15, 2 ** 15 + e))
    return x * sig


@given(st.lists(st.integers(-(2 ** 15), 2 ** 15 - 1), min_size=1, max_size=40),
       st.sampled_from([12.0 / 32767, 0.05, 1.0 / 64, 30.0 / 32767]))
def test_illm_gelu_is_the_tanh_form_bit_exact(xs, scale):
    p = mi.ILLMNonlinear()
    got = p.gelu(np.array([xs], dtype=np.int64), scale, 16, "raise").values[0].tolist()
    assert got == [_illm_gelu_oracle(x, scale) for x in xs]


def test_illm_gelu_accuracy_and_limits():
    from intsim_reference.nonlinear import gelu_erf

    p = mi.ILLMNonlinear()
    S = 12.0 / 32767
    x = np.arange(-32768, 32768, 5, dtype=np.int64).reshape(1, -1)
    r = p.gelu(x, S, 16, "raise")
    err = np.abs(r.values * p.gelu_scale(S) - gelu_erf(x * S)).max()
    assert err < 0.01  # DI-Exp's linear fraction dominates; x * sigmoid(1.702 x) alone is 0.02 off
    assert r.ops.total("div") >= x.size and r.ops.total("mul") >= 4 * x.size
    with pytest.raises(ConfigError, match="at most 16 bits"):
        p.gelu(x, S, 20, "raise")


# ---------------------------------------------------------------------------------------------
# --text FILE: the user's own sentences, and files that are not what they seem
# ---------------------------------------------------------------------------------------------
def test_read_text_file_refuses_hostile_files(tmp_path):
    import os

    from intsim.apps.minilm_report import read_text_file
    from intsim.core.errors import FileFormatError

    good = tmp_path / "mine.txt"
    good.write_text("  Bonjour tout le monde.\n\n;-)\n", encoding="utf-8")
    assert read_text_file(good) == ["Bonjour tout le monde.", ";-)"]
    link = tmp_path / "link.txt"
    link.symlink_to(good)
    assert read_text_file(link) == ["Bonjour tout le monde.", ";-)"]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # must be refused at once, not waited on
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9\n".encode("latin-1"))
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    for path, why in ((tmp_path, "not a regular file|directory"), (fifo, "FIFO|not a regular file"),
                      (bad, "not UTF-8"), (blank, "no sentence"), (tmp_path / "nope.txt", "no such file")):
        with pytest.raises(FileFormatError, match=why) as ei:
            read_text_file(path)
        assert str(path) in str(ei.value)


def test_demo_evaluates_the_users_text(w8a8, tmp_path, capsys):
    text = tmp_path / "mine.txt"
    text.write_text("Wie spät ist es?\nSELECT 1;\nok\n", encoding="utf-8")
    out = tmp_path / "minilm"
    code = main(["demo", "--sentences", "1", "--config", "w8a8", "--out", str(out), "--no-golden",
                 "--shape", "8", "16", "8", "--text", str(text)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "3 user" in printed
    rows = [r for r in (out / "cosine.csv").read_text(encoding="utf-8").splitlines() if ",user,user," in r]
    assert len(rows) == 3 and any("SELECT 1;" in r for r in rows)
    assert all(0.9 < float(r.split(",")[5]) <= 1.0 for r in rows)
    assert "user mean" in (out / "README.md").read_text(encoding="utf-8")
    assert main(["demo", "--sentences", "1", "--config", "w8a8", "--no-report", "--shape", "8", "16", "8",
                 "--text", str(tmp_path)]) == 2
    assert "FileFormatError" in capsys.readouterr().err
