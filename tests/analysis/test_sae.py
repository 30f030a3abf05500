"""SAEs trained with sae-lens on a tensor of activations, cached in the store."""

from __future__ import annotations

import pytest
import torch

from interp.analysis.sae import SAEConfig, cached
from interp.metrics import features as Fe

SMALL = SAEConfig(expansion=4, k=4.0, samples=60_000, batch=256)


@pytest.fixture(scope="module")
def data():
    """Sparse codes over 12 orthonormal directions in 16 dimensions, plus a little noise."""
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(16, 16, generator=g))[0][:12]
    codes = (torch.rand(8000, 12, generator=g) < 0.15) * torch.rand(8000, 12, generator=g) * 3
    return codes @ basis + 0.02 * torch.randn(8000, 16, generator=g), codes, basis


def test_sae_reconstructs_and_is_cached(data, tmp_path):
    from interp.storage.store import Store

    x, _, _ = data
    store = Store(tmp_path)
    sae, q = cached(store, x, SMALL, "synthetic")
    assert q["explained_variance"] > 0.8
    assert 0 < q["l0"] < 16 and 0 <= q["dead_fraction"] < 1
    again, q2 = cached(store, x, SMALL, "synthetic")
    assert store.misses == 1 and store.hits == 1 and q2 == q
    torch.testing.assert_close(again.W_dec, sae.W_dec)


def test_ablating_the_feature_that_carries_a_planted_direction_removes_it(data, tmp_path):
    from interp.storage.store import Store

    x, codes, basis = data
    sae, _ = cached(Store(tmp_path), x, SMALL, "synthetic")
    with torch.no_grad():
        rows = x[codes[:, 0] > 1.0][:200]  # direction 0 strongly present
        f = sae.encode(rows)
        cos = torch.nn.functional.normalize(sae.W_dec, dim=-1) @ basis[0]
        carriers = (cos > 0.5).nonzero()[:, 0]  # an SAE may split a direction over a few
        unrelated = cos.abs().argsort()[:len(carriers)]
        before = rows @ basis[0]
        after = Fe.ablate(rows, f, sae.W_dec, carriers) @ basis[0]
        other = Fe.ablate(rows, f, sae.W_dec, unrelated) @ basis[0]
    assert 1 <= len(carriers) <= 16  # of 64 latents
    assert (before - after).mean() > 0.8 * before.mean()  # most of it is gone
    assert (before - other).abs().mean() < 0.2 * before.mean()


def test_bad_config_is_a_clear_error(data, tmp_path):
    from interp.analysis.sae import train

    with pytest.raises(ValueError, match="need activations"):
        train(data[0][:10], SMALL)
    with pytest.raises(ValueError, match="invalid SAE config"):
        train(data[0], SAEConfig(k=0))


def test_saved_sae_loads_in_sae_lens_and_encodes_identically(data, tmp_path):
    from sae_lens import SAE

    from interp.analysis.sae import load_pretrained, save_dir
    from interp.errors import UsageError
    from interp.storage.store import Store

    x, _, _ = data
    sae, _ = cached(Store(tmp_path / "store"), x, SMALL, "blocks.0.hook_resid_post")
    path = save_dir(sae, tmp_path / "saes" / "blocks.0.hook_resid_post")
    back = SAE.load_from_disk(str(path))  # sae-lens's own reader, nothing of ours
    with torch.no_grad():
        assert torch.equal(back.encode(x[:500]), sae.encode(x[:500]))
    assert set(load_pretrained([str(tmp_path / "saes")], ["blocks.0.hook_resid_post"])) == \
        {"blocks.0.hook_resid_post"}
    with pytest.raises(UsageError, match="not one of this report's hooks"):
        load_pretrained([str(path)], ["blocks.1.hook_resid_post"])
    with pytest.raises(UsageError, match="could not load release"):
        load_pretrained(["no-such-release:no-such-id"], ["blocks.0.hook_resid_post"])
