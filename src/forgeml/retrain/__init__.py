"""Scheduled retraining: `forgeml retrain <pipeline>` locks, checks DVC for changes, reruns the
pipeline, registers the challenger, gates it against the champion on the same frozen evaluation
set, promotes or not, and records why. `forgeml rollback <pipeline>` undoes a promotion."""
