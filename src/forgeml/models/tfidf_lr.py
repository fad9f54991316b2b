"""TF-IDF features (word 1-2 grams + character 2-5 grams) -> logistic regression: the classic,
CPU-cheap sentiment baseline (scikit-learn)."""

from __future__ import annotations

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline


def tfidf_lr(word_ngrams: tuple[int, int] = (1, 2), char_ngrams: tuple[int, int] | None = (2, 5),
             min_df: int = 2, sublinear_tf: bool = True, C: float = 4.0,  # noqa: N803
             max_iter: int = 1000) -> Pipeline:
    features = [("words", TfidfVectorizer(ngram_range=tuple(word_ngrams), min_df=min_df,
                                          sublinear_tf=sublinear_tf, lowercase=True))]
    if char_ngrams:
        features.append(("chars", TfidfVectorizer(analyzer="char_wb",
                                                  ngram_range=tuple(char_ngrams), min_df=min_df,
                                                  sublinear_tf=sublinear_tf, lowercase=True)))
    return make_pipeline(FeatureUnion(features), LogisticRegression(C=C, max_iter=max_iter))
