"""Tasks and data: the task registry, loaders for every file format and the hub, generated demo
tasks, metrics, evaluation, and the in-memory batches the student trains on."""
