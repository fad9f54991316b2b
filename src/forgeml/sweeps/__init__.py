"""Hyper-parameter sweeps on Optuna (`forgeml sweep`): a study per conf/sweep/<name>.yaml in an
RDB storage, each trial a composed config trained like the pipeline's train stage and logged as
an MLflow child run of one parent run per study; killed workers are repaired on the next start."""
