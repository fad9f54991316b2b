"""Recommendation from implicit feedback: GMF / MLP / NeuMF on user-item interactions."""
