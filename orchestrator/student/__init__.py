"""Using a student: open it from a package, a run folder, an ONNX export or an MLflow model URI;
predict on raw text; export it to ONNX."""
