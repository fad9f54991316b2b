"""Deploying a run's model: export, serve, predict. These commands look the run's task up in
the registry (forgeml.tasks); the task-agnostic pieces they build on live in forgeml.serving."""
