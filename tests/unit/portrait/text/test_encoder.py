"""The encoder (tiny random BERT): per-batch padding and bf16 give the same
embeddings as float32 padded to a fixed length, and the precision setting."""

import numpy as np
import pytest

from portrait.text import encoder as enc
from portrait.text.encoder import Encoder, resolve_precision

TEXTS = ["great strings", "", "the pedal hums when the cable is loose, returned it after a week " * 3, "ok"]


def test_sorted_batches_and_bf16_match_float32_padded_embeddings(tiny_bert):
    e = Encoder.load(tiny_bert, precision="float32")
    padded = e.embed(TEXTS, batch_size=2, pad_to=128)
    ours = e.embed(TEXTS, batch_size=2)
    assert ours.shape == (len(TEXTS), e.dim)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert np.allclose(ours, padded, atol=1e-5)  # padding never changes an embedding
    e.precision = "bfloat16"
    low = e.embed(TEXTS, batch_size=2)
    assert (low * ours).sum(axis=1).min() > 0.99
    e.precision = "float32"  # bf16 runs on a cast copy: the float32 weights are untouched
    assert np.array_equal(e.embed(TEXTS, batch_size=2), ours)


def test_precision_setting(monkeypatch):
    monkeypatch.setattr(enc, "native_bf16", lambda: True)
    assert resolve_precision("auto") == "bfloat16"
    assert resolve_precision("float32") == "float32"
    monkeypatch.setattr(enc, "native_bf16", lambda: False)
    assert resolve_precision("auto") == "float32"
    assert resolve_precision("bfloat16") == "bfloat16"  # asked for explicitly: emulated where not native
    with pytest.raises(ValueError, match="auto, float32 or bfloat16"):
        resolve_precision("fp8")
