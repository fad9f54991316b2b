"""k-fold cross-validation as a pipeline stage (`forgeml cv`): folds over train + val, one
MLflow child run per fold, mean and spread per model. Tasks supply the pooled data and the
configs of the models to cross-validate; this package does the rest."""
