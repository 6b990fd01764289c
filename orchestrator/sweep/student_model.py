"""The MLflow model of a student package, logged as "models from code": MLflow copies this file
into the model and runs it when the model is loaded, so loading executes this source and the
``searchspace`` package shipped beside it, never pickled bytecode. The weights are safetensors,
the rest JSON and the tokenizer's own files.

Nothing in this project imports this module: it is passed to MLflow by path.
Input: a DataFrame with the task's text column(s). Output: ``label`` and one ``prob_<label>``
column per class, or ``score`` for a regression task (``searchspace.inference``).
"""

import mlflow
import pandas as pd


class StudentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from transformers import AutoTokenizer

        from searchspace.inference import TextClassifier
        from searchspace.package import TOKENIZER_DIR, load_student, read_task_info

        folder = context.artifacts["student"]
        info = read_task_info(folder)
        tokenizer = AutoTokenizer.from_pretrained(f"{folder}/{TOKENIZER_DIR}")
        self.classifier = TextClassifier(load_student(folder), tokenizer, info)

    def predict(self, context, model_input, params=None):
        columns = self.classifier.info.text_columns
        missing = [name for name in columns if name not in model_input.columns]
        if missing:
            raise ValueError(f"input has no column(s) {missing}; this student reads {columns}")
        texts_a = model_input[columns[0]].tolist()
        texts_b = model_input[columns[1]].tolist() if len(columns) == 2 else None
        predictions = self.classifier.predict(texts_a, texts_b)
        return pd.DataFrame(predictions.columns())


mlflow.models.set_model(StudentModel())
