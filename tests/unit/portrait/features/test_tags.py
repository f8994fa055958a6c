"""The tag vocabulary: a stored one tags exactly as the fitted one."""

import numpy as np

from portrait.features.tags import fit_tag_vocabulary, restore_tag_vocabulary


def test_a_stored_tag_vocabulary_tags_as_the_fitted_one():
    docs = [f"bright tone strings guitar {w} cable tuner" for w in ("cheap", "great", "noisy", "warm")] * 3
    fitted = fit_tag_vocabulary(docs + ["音色很好，琴弦也不错", "音色一般，琴弦容易断", "琴弦很好"])
    restored = restore_tag_vocabulary(fitted.get_feature_names_out().tolist(), fitted.idf_.tolist())
    probe = ["great tone, cheap cable", "琴弦音色都很好"]
    np.testing.assert_allclose(restored.transform(probe).toarray(), fitted.transform(probe).toarray())
    assert list(restored.get_feature_names_out()) == list(fitted.get_feature_names_out())
    assert restore_tag_vocabulary([], []) is None
