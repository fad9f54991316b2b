"""MLflow "models from code" entry point: the code MLflow stores with every ForgeML model (the
weights and specs are separate, unpickled artifacts)."""

from mlflow.models import set_model

from forgeml.pyfunc import ForgeMLModel

set_model(ForgeMLModel())
