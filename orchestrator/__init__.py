"""Everything that runs things: tasks and data, the teacher and its cached knowledge, the
search/retrain loops, the ``adabert`` command and the Ray Tune + Optuna + MLflow sweep.

Frameworks are imported only inside the modules that own them (see README, "Layout").
"""
