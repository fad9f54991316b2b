"""Making a trained network cheaper to run: latency and size measured the same way for every
variant (`latency`), structured pruning (`pruning`) and knowledge distillation
(`distillation`). Each task's compress stage puts them together."""
