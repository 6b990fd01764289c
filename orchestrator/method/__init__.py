"""The AdaBERT method for one task, with no Ray, Optuna or MLflow: search, derive, retrain,
evaluate, time, and the run folder of ``adabert run``."""
