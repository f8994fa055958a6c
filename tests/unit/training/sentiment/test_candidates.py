"""Choosing the shop's sentiment model among its candidates, and its model card."""

from training.sentiment.candidates import BASELINE, FINE_TUNED, Candidate, choose, model_card

FT = Candidate(FINE_TUNED, "fine-tuned all-MiniLM-L6-v2", "r1", val_macro_f1=0.61, test_macro_f1=0.63)
TFIDF = Candidate(BASELINE, "tfidf+logreg", "r2", val_macro_f1=0.55, test_macro_f1=0.56)


def test_the_better_on_validation_is_chosen_and_the_baseline_when_it_wins_or_ties():
    assert choose([FT, TFIDF]) is FT
    weak = Candidate(FINE_TUNED, "fine-tuned e5", "r3", val_macro_f1=0.50, test_macro_f1=0.70)
    assert choose([weak, TFIDF]) is TFIDF  # chosen on validation, whatever test says
    tie = Candidate(FINE_TUNED, "fine-tuned e5", "r4", val_macro_f1=0.55, test_macro_f1=0.60)
    assert choose([tie, TFIDF]) is TFIDF
    assert choose([FT, TFIDF], register=BASELINE) is TFIDF and choose([weak, TFIDF], register=FINE_TUNED) is weak


def test_the_model_card_names_every_candidate_and_the_margins():
    card = model_card(FT, [FT, TFIDF], "split by dates: train 10 (...)")
    assert "fine-tuned all-MiniLM-L6-v2 (fine-tuned) was chosen on validation macro-F1" in card
    assert "| fine-tuned all-MiniLM-L6-v2 (registered) | 0.6100 | 0.6300 | r1 |" in card
    assert "| tfidf+logreg | 0.5500 | 0.5600 | r2 |" in card
    assert "Margin over tfidf+logreg: +0.0600 on validation, +0.0700 on test." in card
    assert "asked for (--register)" in model_card(TFIDF, [FT, TFIDF], "", chosen=False)
