"""Personal data in free text: e-mail addresses, phone numbers, URLs and card numbers replaced by
a placeholder before text reaches prepared data, models or MLflow. Presidio's pattern
recognisers find them (phone numbers via `phonenumbers`, card numbers with their Luhn check);
no NLP model is needed, so it runs offline."""

from __future__ import annotations

from collections import Counter
from functools import cache

PLACEHOLDERS = {"EMAIL_ADDRESS": "<EMAIL>", "PHONE_NUMBER": "<PHONE>", "URL": "<URL>",
                "CREDIT_CARD": "<CARD>"}
MIN_SCORE = 0.4  # Presidio's scores: 0.4 a plausible phone number, 1.0 a checked card/e-mail


@cache
def _recognizers() -> tuple:
    import tldextract
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        PhoneRecognizer,
        UrlRecognizer,
    )

    # The e-mail check asks tldextract for the public-suffix list, which it would download:
    # its bundled snapshot instead, so that masking is the same offline and online.
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    return (EmailRecognizer(), PhoneRecognizer(), UrlRecognizer(), CreditCardRecognizer())


def mask(text: str) -> tuple[str, Counter]:
    """`text` with every finding replaced, and how many of each kind were found. Overlapping
    findings (the domain inside an e-mail address) count once, as the longest."""
    found = [(r.start, r.end, r.entity_type) for recognizer in _recognizers()
             for r in recognizer.analyze(text, recognizer.supported_entities, None)
             if r.score >= MIN_SCORE and r.entity_type in PLACEHOLDERS]
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(found, key=lambda f: (f[0] - f[1], f[0])):  # longest first
        if all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, kind))
    counts = Counter(kind for _, _, kind in kept)
    for start, end, kind in sorted(kept, reverse=True):
        text = text[:start] + PLACEHOLDERS[kind] + text[end:]
    return text, counts


def mask_all(texts: list[str]) -> tuple[list[str], dict[str, int]]:
    """Every text masked, and the counts per kind (all kinds listed, zeros included)."""
    total: Counter = Counter()
    out = []
    for text in texts:
        masked, counts = mask(text)
        out.append(masked)
        total.update(counts)
    return out, {PLACEHOLDERS[kind].strip("<>").lower(): int(total[kind])
                 for kind in PLACEHOLDERS}
