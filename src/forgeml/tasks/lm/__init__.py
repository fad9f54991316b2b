"""Language modelling: a GPT trained on tokenised text (Shakespeare by default)."""
