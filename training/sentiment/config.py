"""The sentiment fine-tune's budget and hyperparameters; the CLI takes its defaults from here.
Budgets are optimizer steps and epochs, never wall-clock: the same seed and data give the
same model on a busy machine as on a quiet one. `max_minutes` is only a safety cap; a run
it cuts is tagged `truncated`."""

from __future__ import annotations

from dataclasses import dataclass

from portrait.text.encoder import default_model_path


@dataclass
class FineTuneConfig:
    model: str = ""  # Hugging Face model directory; default MiniLM (portrait.text.encoder.default_model_path)
    epochs: int = 3
    max_steps: int | None = None  # stop after this many optimizer steps (fewer than the epochs give)
    batch_size: int = 32
    max_length: int | None = None  # tokens per review; None: fitted to the training texts (finetune.fitted_length)
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_minutes: float | None = None  # safety cap: a run it cuts keeps its best checkpoint and is tagged truncated
    eval_every: int = 0  # steps between validations; 0 = 4 times per epoch
    val_limit: int = 800  # validate on at most this many reviews (evenly spaced in time)
    patience: int = 8  # validations without improvement before stopping early (2 epochs)
    seed: int = 13
    register: str = "best"  # best (on validation) | fine-tuned | baseline | blend: which is registered
    min_class_examples: int = 10  # fewer reviews of a class in validation or test: the split is refused
    precision: str | None = None  # auto | float32 | bfloat16; None: the PORTRAIT_ENCODER_PRECISION setting
    language: str | None = (
        None  # "zh": the shop's Chinese reviews (+ --chinese data) only, registered as review-sentiment-zh
    )
    chinese: int = 0  # Chinese reviews (online_shopping_10_cats, positive/negative) trained beside the English ones
    # freeze the word embeddings: None = when the vocabulary is over 100k pieces (multilingual
    # models: 96M of e5-small's 117M parameters; their AdamW state and update dominate a CPU step)
    freeze_embeddings: bool | None = None

    def model_path(self) -> str:
        return self.model or str(default_model_path())

    @property
    def length(self) -> int:
        """The max length in tokens, once given or fitted (training.sentiment.finetune.fitted_length)."""
        if self.max_length is None:
            raise ValueError("the max length is not fitted yet: call fitted_length(cfg, texts) first")
        return self.max_length
