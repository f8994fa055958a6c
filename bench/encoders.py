"""Embedding speed and vocabulary coverage of the two encoders on the same texts,
side by side in one run: MiniLM (the English default) against multilingual-e5-small
(built by `portrait encoder install`, into a temporary directory if the state
directory has none), on 512 real English reviews (Amazon) and 512 real Chinese
reviews (online_shopping_10_cats), same batch size, same precision.

    .venv/bin/python bench/encoders.py [--n 512]
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import common  # bench/common.py (bench/ is on sys.path when a script runs)

from portrait.settings import get_settings
from portrait.text.encoder import Encoder, default_model_path, review_text


def english(n: int) -> list[str]:
    path = (
        get_settings().resolved_data_dir()
        / "amazon_musical_instruments_5core"
        / "reviews_Musical_Instruments_5.json.gz"
    )
    with gzip.open(path, "rt") as f:
        return [review_text(r.get("summary", ""), r.get("reviewText", "")) for r in map(json.loads, list(f)[:n])]


def chinese(n: int) -> list[str]:
    from portrait.ingest.zh_sample import source_rows

    rows = source_rows(get_settings().resolved_data_dir())
    step = max(1, len(rows) // n)  # spread over the 10 categories
    return [r["review"].lstrip("\ufeff") for r in rows[::step] if r["review"]][:n]


def unk_share(encoder: Encoder, texts: list[str]) -> float:
    ids = [i for t in texts for i in encoder.tokenizer(encoder.prefix + t)["input_ids"]]
    return sum(i == encoder.tokenizer.unk_token_id for i in ids) / len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=512)
    args = parser.parse_args()
    texts = {"English": english(args.n), "Chinese": chinese(args.n)}
    e5_dir = get_settings().state_dir / "encoders" / "multilingual-e5-small"
    with tempfile.TemporaryDirectory() as tmp:
        if not (e5_dir / "config.json").exists():
            from portrait.text.e5_install import install

            e5_dir = Path(tmp) / "e5"
            install(e5_dir, progress=lambda _: None)
        encoders = {"MiniLM-L6 (en)": Encoder.load(default_model_path()), "multilingual-e5-small": Encoder.load(e5_dir)}
        print(f"{args.n} texts per language, batch 64, precision {encoders['MiniLM-L6 (en)'].precision}")
        rates = {}
        for name, encoder in encoders.items():
            for language, batch in texts.items():
                encoder.embed(batch[:64])  # warm-up
                start = time.perf_counter()
                encoder.embed(batch)
                rates[name, language] = len(batch) / (time.perf_counter() - start)
                print(
                    f"  {name:<22} {language:<8} {rates[name, language]:>7.1f} texts/s   "
                    f"[UNK] {unk_share(encoder, batch):.1%} of tokens"
                )
        for language in texts:
            ratio = rates["multilingual-e5-small", language] / rates["MiniLM-L6 (en)", language]
            print(f"  e5 / MiniLM speed, {language}: {ratio:.2f}x")


if __name__ == "__main__":
    with common.recorded("encoders"):
        main()
