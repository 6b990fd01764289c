"""The multi-task sweep: Ray Tune runs the trials, Optuna tunes the outer hyperparameters, MLflow
records everything. The only place (with ``cluster/``) that imports Ray, Optuna or MLflow."""
