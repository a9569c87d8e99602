"""The float64 training step (finite differences, captured GEMMs), the integer GEMMs of the step
(IM-Unpack, INT16 dynamic fixed point, accumulator overflow) and ``intsim report training``."""

from __future__ import annotations

import argparse
import csv
import math

import numpy as np
import pytest

from intsim.core.errors import ConfigError
from intsim.hw.unpack import compare_strategies
from intsim.models.minilm.training import (
    UnpackGemm,
    default_variants,
    dfp_quantize,
    dfp_quantize_group,
    exact_product,
    integer_training_step,
    outside_register,
    overflow_counts,
    relative_error,
)
from intsim.quant.quantizers import quantize_rtn
from intsim_reference.minilm import LINEAR_GEMMS, MiniLMReference
from intsim_reference.training import (
    KINDS,
    TrainingGemm,
    model_weights,
    random_model,
    sgd_update,
    training_step,
)

IDS = np.array([[1, 5, 7, 2, 3], [1, 9, 2, 0, 0], [1, 4, 11, 6, 2]])
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
PAIRS = [(0, 1), (1, 2)]
LABELS = [0.9, 0.1]


@pytest.fixture(scope="module")
def small():
    model = random_model(layers=2, hidden=16, heads=2, intermediate=32, vocab=50, seed=0)
    return model, training_step(model, IDS, MASK, PAIRS, LABELS)


def _loss(model: MiniLMReference, weights: dict) -> float:
    return training_step(MiniLMReference(weights, model.config), IDS, MASK, PAIRS, LABELS, keep_gemms=False).loss


# ---------------------------------------------------------------------------------------------
# the float64 backward pass
# ---------------------------------------------------------------------------------------------

def test_gradients_match_finite_differences(small):
    model, step = small
    weights = model_weights(model)
    top = max(float(np.abs(g).max()) for g in step.gradients.values())
    rng = np.random.default_rng(7)
    h = 1e-5
    checked = 0
    for name, grad in step.gradients.items():
        for _ in range(2):
            idx = tuple(int(rng.integers(0, n)) for n in grad.shape)
            plus = {k: v.copy() for k, v in weights.items()}
            minus = {k: v.copy() for k, v in weights.items()}
            plus[name][idx] += h
            minus[name][idx] -= h
            fd = (_loss(model, plus) - _loss(model, minus)) / (2 * h)
            assert abs(fd - grad[idx]) <= 1e-6 * abs(fd) + 1e-9 * top, (name, idx, fd, grad[idx])
            checked += 1
    assert checked == 2 * len(step.gradients) == 2 * (2 + 2 * 16)
    # input entries: the word embedding of a token that occurs once (the gradient of its row is
    # the embedding gradient of that token)
    flat_ids = IDS[MASK.astype(bool)]
    for token in (5, 9, 11):
        (pos,) = np.flatnonzero(flat_ids == token)
        for col in (0, 7, 15):
            plus, minus = dict(weights), dict(weights)
            for w, sign in ((plus, 1), (minus, -1)):
                w["embeddings.word_embeddings.weight"] = weights["embeddings.word_embeddings.weight"].copy()
                w["embeddings.word_embeddings.weight"][token, col] += sign * h
            fd = (_loss(model, plus) - _loss(model, minus)) / (2 * h)
            g = step.embedding_grad[pos, col]
            assert abs(fd - g) <= 1e-6 * abs(fd) + 1e-9 * top, (token, col, fd, g)


def test_loss_and_cosines_follow_the_reference_embeddings(small):
    model, step = small
    emb = model.forward(IDS, MASK)
    assert np.allclose(step.embeddings / np.linalg.norm(step.embeddings, axis=1, keepdims=True), emb, atol=1e-14)
    cos = np.array([emb[i] @ emb[j] for i, j in PAIRS])
    assert np.allclose(step.cosines, cos, atol=1e-14)
    assert step.loss == pytest.approx(float(np.mean((cos - np.array(LABELS)) ** 2)), rel=1e-12)


def test_forward_gemms_are_the_reference_forward_gemms(small):
    model, step = small
    seen = []
    model.forward(IDS, MASK, capture=lambda layer, name, a, b: seen.append((layer, name, a, b)))
    mine = [g for g in step.gemms if g.role == "forward"]
    key = {(g.layer, g.name): [] for g in mine}
    for g in mine:
        key[(g.layer, g.name)].append(g)
    theirs = {(s[0], s[1]): [] for s in seen}
    for s in seen:
        theirs[(s[0], s[1])].append(s)
    assert set(key) == set(theirs)
    for k, gs in key.items():
        assert len(gs) == len(theirs[k])
        for g, (_, _, a, b) in zip(gs, theirs[k], strict=True):
            assert np.allclose(g.a, a, rtol=1e-12, atol=1e-12) and np.array_equal(g.b.shape, b.shape)
            assert np.allclose(g.b, b, rtol=1e-12, atol=1e-12)


def test_captured_backward_gemms_reproduce_the_gradients(small):
    model, step = small
    cfg = model.config
    by = {(g.layer, g.name, g.role): g for g in step.gemms if g.name in LINEAR_GEMMS}
    names = {"q_proj": "attention.self.query", "k_proj": "attention.self.key", "v_proj": "attention.self.value",
             "o_proj": "attention.output.dense", "ffn_up": "intermediate.dense", "ffn_down": "output.dense"}
    for layer in range(cfg.num_hidden_layers):
        for name, param in names.items():
            g = by[(layer, name, "grad_b")]
            assert g.kind == "weight_grad"
            p = f"encoder.layer.{layer}.{param}."
            # dW recomputed from the captured X^T and dY is the gradient; the bias gradient is dY's column sum
            assert np.allclose((g.a @ g.b).T, step.gradients[p + "weight"], rtol=1e-13, atol=1e-18)
            assert np.allclose(g.b.sum(axis=0), step.gradients[p + "bias"], rtol=1e-12, atol=1e-18)
            f = by[(layer, name, "forward")]
            assert np.array_equal(g.a, f.a.T)  # the same activations as the forward product
            ga = by[(layer, name, "grad_a")]
            assert ga.kind == "input_grad" and np.array_equal(ga.a, g.b) and np.array_equal(ga.b, f.b.T)
    # attention: one forward and two gradient GEMMs per product, sentence and head
    per_head = [g for g in step.gemms if g.name not in LINEAR_GEMMS]
    assert len(per_head) == cfg.num_hidden_layers * 3 * cfg.num_attention_heads * 2 * 3
    assert {g.kind for g in per_head} == {"attention", "attention_grad"}
    fwd = {(g.layer, g.name, g.sentence, g.head): g for g in per_head if g.role == "forward"}
    for g in per_head:
        f = fwd[(g.layer, g.name, g.sentence, g.head)]
        if g.role == "grad_a":  # dA = dC B^T
            assert np.array_equal(g.b, f.b.T) and g.shape == (f.shape[0], f.shape[2], f.shape[1])
        elif g.role == "grad_b":  # dB = A^T dC
            assert np.array_equal(g.a, f.a.T) and g.shape == (f.shape[1], f.shape[0], f.shape[2])
    assert sorted({g.kind for g in step.gemms}) == sorted(KINDS)


def test_the_gemm_function_replaces_every_product(small):
    model, step = small
    calls = []

    def doubled(g: TrainingGemm) -> np.ndarray:
        calls.append(g.kind)
        return g.a @ g.b

    again = training_step(model, IDS, MASK, PAIRS, LABELS, gemm=doubled, keep_gemms=False)
    assert len(calls) == len(step.gemms) and again.gemms == []
    assert again.loss == step.loss
    zeroed = training_step(model, IDS, MASK, PAIRS, LABELS, keep_gemms=False,
                           gemm=lambda g: 0 * (g.a @ g.b) if g.name == "ffn_down" else g.a @ g.b)
    assert zeroed.loss != step.loss
    with pytest.raises(ValueError, match="shape"):
        training_step(model, IDS, MASK, PAIRS, LABELS, gemm=lambda g: np.zeros((1, 1)))


def test_training_step_errors():
    model = random_model(layers=1, hidden=8, heads=2, intermediate=16, vocab=20)
    ids, mask = IDS[:2] % 20, MASK[:2]
    with pytest.raises(ValueError, match="at least one"):
        training_step(model, ids, mask, [], [])
    with pytest.raises(ValueError, match="labels"):
        training_step(model, ids, mask, [(0, 1)], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        training_step(model, ids, mask, [(0, 2)], [1.0])
    with pytest.raises(ValueError, match="different"):
        training_step(model, ids, mask, [(1, 1)], [1.0])
    with pytest.raises(ValueError, match="finite"):
        training_step(model, ids, mask, [(0, 1)], [math.nan])
    with pytest.raises(ValueError, match="vocabulary|input_ids"):
        training_step(model, ids + 100, mask, [(0, 1)], [1.0])


def test_sgd_update():
    w = {"a": np.array([1.0, 2.0]), "b": np.array([3.0])}
    out = sgd_update(w, {"a": np.array([10.0, -10.0])}, 0.1)
    assert out["a"].tolist() == [0.0, 3.0] and out["b"].tolist() == [3.0]
    assert out["b"] is not w["b"] and w["a"].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="unknown"):
        sgd_update(w, {"c": np.zeros(1)}, 0.1)
    with pytest.raises(ValueError, match="shape"):
        sgd_update(w, {"a": np.zeros(3)}, 0.1)
    for lr in (-1.0, math.inf, True, "0.1"):
        with pytest.raises(ValueError, match="lr"):
            sgd_update(w, {}, lr)


# ---------------------------------------------------------------------------------------------
# INT16 dynamic fixed point and accumulator overflow
# ---------------------------------------------------------------------------------------------

def test_dfp_exponent_is_the_smallest_that_fits():
    rng = np.random.default_rng(3)
    for scale in (1e-6, 0.3, 1.0, 7.5, 1e5):
        x = rng.standard_t(3, (20, 30)) * scale
        d = dfp_quantize(x)
        assert np.abs(d.values).max() <= 32767
        assert np.round(np.abs(x).max() / 2.0 ** (d.exponent - 1)) > 32767  # one step finer does not fit
        assert np.abs(d.dequantize() - x).max() <= 2.0 ** (d.exponent - 1)
    # the rounding boundary: 32767.5 * 2**-3 rounds (half to even) to 32768 at e = -3, so e = -2
    d = dfp_quantize(np.array([32767.5 / 8, 1.0]))
    assert d.exponent == -2 and d.values.tolist() == [16384, 4]
    q, e = dfp_quantize_group([np.zeros((2, 2)), np.zeros(3)])
    assert e == 0 and all(not v.any() for v in q)
    with pytest.raises(ConfigError, match="finite"):
        dfp_quantize(np.array([1.0, np.inf]))
    with pytest.raises(ConfigError, match="bits"):
        dfp_quantize(np.ones(2), bits=1)
    with pytest.raises(ConfigError, match="at least one"):
        dfp_quantize_group([])


def _brute_overflow(A: np.ndarray, B: np.ndarray, k: int | None) -> int:
    """Outputs where a partial sum (k None) or a group sum of k products leaves int32, in Python ints."""
    lo, hi = -(2**31), 2**31 - 1
    n = 0
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            prods = [int(A[i, t]) * int(B[t, j]) for t in range(A.shape[1])]
            if k is None:
                sums = np.cumsum(np.array(prods, dtype=object))
            else:
                sums = [sum(prods[t:t + k]) for t in range(0, len(prods), k)]
            n += any(not lo <= int(s) <= hi for s in sums)
    return n


def test_overflow_counts_match_a_brute_force_count():
    rng = np.random.default_rng(11)
    A = rng.integers(-32767, 32768, (6, 40))
    B = rng.integers(-32767, 32768, (40, 5))
    B[:, 0] = np.sign(A[0]) * 32767  # output (0, 0) grows steadily: it overflows for every organisation
    variants = default_variants(spill=(2, 8), wide=(40,))
    got = overflow_counts(A, B, variants)
    assert got["acc32"] == _brute_overflow(A, B, None) >= 1
    assert got["acc32, spill every 2"] == _brute_overflow(A, B, 2) == 0
    assert got["acc32, spill every 8"] == _brute_overflow(A, B, 8) >= 1
    assert got["acc40"] == 0
    exact = A.astype(object) @ B.astype(object)
    assert outside_register(A, B, 32) == sum(not -(2**31) <= int(v) < 2**31 for v in exact.ravel())
    assert np.array_equal(exact_product(A, B), exact.astype(np.int64))
    with pytest.raises(ConfigError, match="wide"):
        default_variants(wide=(32,))
    with pytest.raises(ConfigError, match="spill"):
        default_variants(spill=(1,))


def test_relative_error():
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error(np.ones(3), np.zeros(3)) == math.inf
    assert relative_error(np.array([3.0, 4.0]), np.array([0.0, 0.0]) + [3.0, 0.0]) == pytest.approx(4 / 3)


# ---------------------------------------------------------------------------------------------
# the integer training step
# ---------------------------------------------------------------------------------------------

def test_integer_step_is_exact_per_gemm_and_close_to_float(small):
    model, step = small
    fine, run = integer_training_step(model, IDS, MASK, PAIRS, LABELS, UnpackGemm(bits=4, levels=65535))
    assert sum(t.gemms for t in run.tally.values()) == len(step.gemms)
    assert all(t.exact == t.gemms for t in run.tally.values())
    assert all(t.ratio > 1.0 for t in run.tally.values())  # 16-bit-like integers on 4-bit multipliers
    errs = [relative_error(fine.gradients[k], g) for k, g in step.gradients.items()
            if np.linalg.norm(g) > 1e-12 * max(np.linalg.norm(v) for v in step.gradients.values())]
    assert max(errs) < 2e-3
    coarse, _ = integer_training_step(model, IDS, MASK, PAIRS, LABELS, UnpackGemm(bits=4, levels=15, strategy="row"))
    errs15 = [relative_error(coarse.gradients[k], step.gradients[k]) for k in step.gradients]
    assert np.median(errs15) > 10 * np.median(errs)  # the quantizer, not the datapath, sets the error


def test_unpack_gemm_quantizes_the_output_gradient_with_grad_levels():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
    for role, la, lb in (("forward", 15, 15), ("grad_a", 4095, 15), ("grad_b", 15, 4095)):
        run = UnpackGemm(bits=4, levels=15, grad_levels=4095, strategy="row")
        out = run(TrainingGemm(0, "q_proj", role, a, b))
        qa, qb = quantize_rtn(a, la, 0.95), quantize_rtn(b, lb, 0.95)
        want = (qa.values @ qb.values) / (float(qa.scale) * float(qb.scale))
        assert np.array_equal(out, want), role
        kind = {"forward": "forward", "grad_a": "input_grad", "grad_b": "weight_grad"}[role]
        t = run.tally[kind]
        assert (t.gemms, t.exact, t.macs) == (1, 1, 5 * 7 * 3)
        assert t.work == compare_strategies(qa.values, qb.values, 4, ("row",))["row"].work


def test_unpack_gemm_rejects_bad_settings():
    for kwargs, match in (({"bits": 1}, "bits"), ({"bits": 17}, "bits"), ({"strategy": "greedy"}, "strategy"),
                          ({"percentile": 0.0}, "percentile"), ({"levels": 0}, "levels"),
                          ({"grad_levels": -1}, "grad_levels"), ({"acc_bits": 6}, "acc_bits")):
        with pytest.raises(ConfigError, match=match):
            UnpackGemm(**kwargs)
    model = random_model(layers=1, hidden=8, heads=2, intermediate=16, vocab=20)
    with pytest.raises(ConfigError, match="UnpackGemm"):
        integer_training_step(model, IDS[:2] % 20, MASK[:2], [(0, 1)], [1.0], gemm=lambda g: g.a @ g.b)


# ---------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    from intsim.apps.reports import training as report

    parser = argparse.ArgumentParser()
    report.add_arguments(parser)
    return parser


def _synthetic_workload():
    from intsim.apps.reports.training import Workload

    model = random_model(layers=1, hidden=16, heads=2, intermediate=32, vocab=50, seed=4)
    return Workload(model, IDS[:2], MASK[:2], [(0, 1)], [1.0], ("s0", "s1"), "a random 1-layer model")


def test_report_on_a_synthetic_model_is_complete_and_deterministic(tmp_path):
    pytest.importorskip("matplotlib")
    from intsim.apps.reports import training as report

    parser = _parser()
    outs = []
    for name in ("r1", "r2"):
        args = parser.parse_args(["--out", str(tmp_path / name), "--bits", "2,4", "--step-levels", "15,255",
                                  "--spill", "4", "--wide", "40", "--quiet"])
        assert report.run(args, workload=_synthetic_workload()) == 0
        outs.append(tmp_path / name)
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == [".intsim-output.json", "README.md", "gemms.csv", "heavy_hitters.csv", "int16.csv",
                     "int16_gemms.csv", "kinds.csv", "ratio_by_kind.png", "step.csv", "step_gemms.csv"]
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    kinds = list(csv.DictReader((outs[0] / "kinds.csv").open()))
    labels = {r["kind"] for r in kinds}
    assert set(KINDS) <= labels and "training step (all)" in labels
    # a group's ratio is compare_strategies on the same quantized operands
    wl = _synthetic_workload()
    step = training_step(wl.model, wl.input_ids, wl.attention_mask, wl.pairs, wl.labels)
    g = next(x for x in step.gemms if (x.layer, x.name, x.role) == (0, "ffn_up", "grad_b"))
    want = compare_strategies(quantize_rtn(g.a, 15, 0.95).values, quantize_rtn(g.b, 15, 0.95).values, 2, ("plan",))
    rows = list(csv.DictReader((outs[0] / "gemms.csv").open()))
    row = next(r for r in rows if (r["gemm"], r["role"], r["bits"], r["strategy"]) == ("ffn_up", "grad_b", "2", "plan"))
    assert row["kind"] == "weight_grad" and int(row["unpacked_macs"]) == want["plan"].work
    # the kind aggregate is the sum over its groups
    wg = [r for r in rows if r["kind"] == "weight_grad" and r["bits"] == "4" and r["strategy"] == "row"]
    agg = next(r for r in kinds if (r["kind"], r["bits"], r["strategy"]) == ("weight_grad", "4", "row"))
    work = sum(int(r["unpacked_macs"]) for r in wg)
    assert agg["unpack_ratio"] == f"{work / int(agg['macs']):.4f}"
    int16 = {r["kind"]: r for r in csv.DictReader((outs[0] / "int16.csv").open())}
    assert set(int16) == set(KINDS)
    for r in int16.values():  # a 48-bit-or-wider register never overflows on these sizes; spilling helps
        assert int(r["acc40"]) == 0 and int(r["acc32, spill every 4"]) <= int(r["acc32"])
    step_rows = list(csv.DictReader((outs[0] / "step_gemms.csv").open()))
    assert {r["levels"] for r in step_rows} == {"15", "255"}
    assert all(r["exact"] == r["gemms"] for r in step_rows)
    errs = {(r["levels"], r["parameter"]): r["grad_rel_error"] for r in csv.DictReader((outs[0] / "step.csv").open())}
    assert errs[("255", "encoder.layer.0.attention.self.key.bias")] == "n/a"
    assert float(errs[("255", "encoder.layer.0.output.dense.weight")]) < \
        float(errs[("15", "encoder.layer.0.output.dense.weight")])
    text = (outs[0] / "README.md").read_text()
    for heading in ("## Unpack ratio by GEMM kind", "## Heavy hitters", "## INT16 dynamic fixed point",
                    "**Recommendation.**", "## One training step on the integer datapath"):
        assert heading in text
    assert "a random 1-layer model" in text


def test_report_errors(tmp_path):
    from intsim.apps.reports import training as report

    parser = _parser()
    out = tmp_path / "r"
    for argv, match in ((["--bits", "1-3"], "--bits"), (["--spill", "x"], "--spill"), (["--wide", "30"], "--wide"),
                        (["--step-levels", "0"], "--step-levels"), (["--percentile", "0"], "--percentile"),
                        (["--levels", "0"], "--levels"), (["--step-bits", "1"], "--step-bits"),
                        (["--lr", "nan"], "--lr"), (["--pairs", "0"], "--pairs")):
        with pytest.raises(ConfigError, match=match):
            report.run(parser.parse_args(["--out", str(out), "--quiet", *argv]))
        assert not out.exists()
    out.mkdir()
    (out / "mine.txt").write_text("not intsim's")
    with pytest.raises(ConfigError):
        report.run(parser.parse_args(["--out", str(out), "--quiet", "--bits", "4"]),
                   workload=_synthetic_workload())
    assert (out / "mine.txt").exists()


def test_report_command_on_the_real_model(tmp_path, capsys):
    try:
        from intsim.models.loading import load_minilm_config, tokenize

        load_minilm_config()
        tokenize(["x"], max_len=4)
    except Exception as exc:  # the model package and tokenizers are optional
        pytest.skip(f"MiniLM not available: {exc}")
    from intsim.apps.cli import main

    out = tmp_path / "training"
    assert main(["report", "training", "--out", str(out), "--pairs", "1", "--layers", "1", "--max-len", "12",
                 "--bits", "4", "--step-levels", "255", "--no-plots", "-q"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [".intsim-output.json", "README.md", "gemms.csv",
                                                     "heavy_hitters.csv", "int16.csv", "int16_gemms.csv",
                                                     "kinds.csv", "step.csv", "step_gemms.csv"]
    text = (out / "README.md").read_text()
    assert "1 of 6 encoder layers" in text and "ratio_by_kind.png" not in text
    assert main(["report", "training", "--out", str(tmp_path / "x"), "--layers", "7", "-q"]) == 2
