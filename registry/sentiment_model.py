"""MLflow model-from-code for `review-sentiment`: logged with the fine-tuned
Hugging Face classifier as an artifact, loaded by serving without training code.

Input: a DataFrame with a `text` column. Output: label and the probability of
each class (negative, neutral, positive)."""
from __future__ import annotations

import mlflow.pyfunc
import pandas as pd
from mlflow.models import set_model

LABELS = ("negative", "neutral", "positive")


class SentimentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = context.artifacts["classifier"]
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True).eval()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.max_length = int((context.model_config or {}).get("max_length", 128))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        import torch

        texts = [str(t) for t in model_input["text"].tolist()]
        probs = []
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # pad per batch
        out = [None] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                idx = order[start:start + 64]
                batch = self.tokenizer([texts[i] for i in idx], truncation=True, max_length=self.max_length,
                                       padding=True, return_tensors="pt").to(self.device)
                p = torch.softmax(self.model(**batch).logits.float(), dim=-1).cpu().numpy()
                for i, row in zip(idx, p):
                    out[i] = row
        probs = pd.DataFrame(out, columns=[f"prob_{label}" for label in LABELS]) if texts else \
            pd.DataFrame(columns=[f"prob_{label}" for label in LABELS])
        probs.insert(0, "label", [LABELS[int(r.argmax())] for r in out] if texts else [])
        return probs


set_model(SentimentModel())
