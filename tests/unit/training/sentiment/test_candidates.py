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


def test_a_blend_is_chosen_only_past_the_gain_its_fitted_weight_could_give():
    from training.sentiment.candidates import BLEND, BLEND_MIN_GAIN

    close = Candidate(BLEND, "blend 0.6", "r5", val_macro_f1=FT.val_macro_f1 + BLEND_MIN_GAIN / 2, test_macro_f1=0.7)
    assert choose([FT, TFIDF, close]) is FT
    clear = Candidate(BLEND, "blend 0.6", "r6", val_macro_f1=FT.val_macro_f1 + 0.02, test_macro_f1=0.6)
    assert choose([FT, TFIDF, clear]) is clear
    assert choose([FT, TFIDF, close], register=BLEND) is close


def test_the_blend_weight_is_chosen_on_validation_and_averages_as_served():
    import numpy as np

    from training.sentiment.candidates import blend_weight, blended

    y = np.array([0, 0, 1, 2, 2, 2])
    binary = np.zeros(6, bool)
    # the fine-tuned model is right on the first half, the baseline on the second: a blend can be right on both
    fine_tuned = np.array(
        [[0.9, 0.05, 0.05]] * 2 + [[0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [0.4, 0.3, 0.3], [0.4, 0.3, 0.3]]
    )
    baseline = np.array(
        [[0.4, 0.3, 0.3]] * 2 + [[0.45, 0.1, 0.45], [0.05, 0.05, 0.9], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    )
    weight = blend_weight(y, fine_tuned, baseline, binary)
    assert 0 < weight < 1 and (blended(weight, fine_tuned, baseline).argmax(1) == y).all()
    assert (blended(1.0, fine_tuned, baseline) == fine_tuned).all()


def test_the_model_card_gives_the_fine_tuned_margin_when_another_candidate_won():
    card = model_card(TFIDF, [FT, TFIDF], "")
    assert "The fine-tuned model's own margin over tfidf+logreg: +0.0600 on validation, +0.0700 on test." in card
