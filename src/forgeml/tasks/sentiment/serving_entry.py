"""MLflow "models from code" entry point of sentiment models (the predictor's files are
separate, unpickled artifacts)."""

from mlflow.models import set_model

from forgeml.tasks.sentiment.serving import SentimentModel

set_model(SentimentModel())
