"""The operator registry: every family's ``OPS`` table, every operator run in every variant."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from intsim.core.errors import ConfigError
from intsim.ops.opspec import OpSpec
from intsim.ops.registry import FAMILIES, get_op, operators

X = np.array([[3, -1, 0, 7], [-5, 2, 9, -8]])
ARGS = {"x": X, "p": X, "gate": X, "up": X, "n": np.abs(X), "scale": 0.05, "in_scale": 0.05, "out_scale": 0.1,
        "up_scale": 0.05}


def test_every_family_is_listed_under_its_prefix():
    ops = operators()
    assert {name.split(".")[0] for name in ops} == set(FAMILIES)
    for name, spec in ops.items():
        assert isinstance(spec, OpSpec) and name == f"{name.split('.')[0]}.{spec.name}"
        params = list(inspect.signature(spec.fn).parameters)
        assert params[:len(spec.inputs)] == list(spec.inputs), name
        assert spec.summary, name


@pytest.mark.parametrize("name", sorted(operators()))
def test_every_operator_runs_in_every_variant(name):
    spec = get_op(name)
    args = [ARGS[k] - (int(X.max()) if k == "x" and name.endswith("exp") else 0) if k == "x" else ARGS[k]
            for k in spec.inputs]
    for variant in spec.variants or (None,):
        kw = {} if variant is None else {"variant": variant}
        r = spec.fn(*args, **kw)
        assert r.values.shape == X.shape and r.ops.total() > 0, (name, variant)


def test_unknown_operator_names_the_registered_ones():
    with pytest.raises(ConfigError, match="ibert.softmax"):
        get_op("ibert.sofmax")
    with pytest.raises(ConfigError, match="unknown operator"):
        get_op(3)


@pytest.mark.parametrize("name", [n for n, s in sorted(operators().items()) if s.variants])
def test_the_old_profile_keyword_still_selects_the_variant(name):
    spec = get_op(name)
    args = [ARGS[k] - (int(X.max()) if k == "x" and name.endswith("exp") else 0) if k == "x" else ARGS[k]
            for k in spec.inputs]
    variant = spec.variants[-1]
    with pytest.warns(DeprecationWarning, match="variant="):
        old = spec.fn(*args, profile=variant)
    assert np.array_equal(old.values, spec.fn(*args, variant=variant).values), name
    # the old keyword reaches the variant check (it is not dropped for the default)
    with pytest.warns(DeprecationWarning, match="variant="), pytest.raises(ConfigError, match="unknown variant"):
        spec.fn(*args, profile="no-such-variant")
