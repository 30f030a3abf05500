"""The activation cache: exact captures, computed once per (weights, inputs, names)."""

from __future__ import annotations

import pytest
import torch

from interp.storage.activations import activations, capture, digest, hook_names
from interp.storage.store import Store
from interp.studies import lm


@pytest.fixture(scope="module")
def model():
    return lm.build_model(lm.ModelConfig(2, 16, 2, 32), d_vocab=50, n_ctx=12, seed=0)


@pytest.fixture()
def tokens():
    return torch.randint(0, 50, (10, 12), generator=torch.Generator().manual_seed(0))


def test_capture_matches_run_with_cache(model, tokens):
    names = hook_names(model, ("hook_resid_post", "mlp.hook_post"))
    got = capture(model, tokens, names, batch=3)  # batching must not change anything
    _, cache = model.run_with_cache(tokens, names_filter=names)
    for n in names:
        torch.testing.assert_close(got[n], cache[n])


def test_second_request_reads_the_store_without_a_forward_pass(model, tokens, tmp_path,
                                                                monkeypatch):
    store = Store(tmp_path)
    names = hook_names(model)
    first = activations(model, tokens, names, store)
    calls = []
    original = type(model).forward
    monkeypatch.setattr(type(model), "forward",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    again = activations(model, tokens, names, store)
    assert calls == [] and store.hits == 1 and store.misses == 1
    for n in names:
        torch.testing.assert_close(first[n], again[n])


def test_key_depends_on_weights_inputs_and_names(model, tokens, tmp_path):
    store = Store(tmp_path)
    activations(model, tokens, ["blocks.0.hook_resid_post"], store)
    activations(model, tokens[:5], ["blocks.0.hook_resid_post"], store)
    activations(model, tokens, ["blocks.1.hook_resid_post"], store)
    other = lm.build_model(lm.ModelConfig(2, 16, 2, 32), d_vocab=50, n_ctx=12, seed=1)
    activations(other, tokens, ["blocks.0.hook_resid_post"], store)
    assert store.misses == 4 and store.hits == 0
    assert digest(model.state_dict()) != digest(other.state_dict())


def test_bad_input_is_a_clear_error(model, tokens, tmp_path):
    with pytest.raises(ValueError, match="unknown hook name"):
        activations(model, tokens, ["blocks.9.hook_resid_post"], Store(tmp_path))
    with pytest.raises(ValueError, match="integer tensor"):
        activations(model, tokens.float(), ["blocks.0.hook_resid_post"], Store(tmp_path))
