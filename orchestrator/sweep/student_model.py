"""The MLflow model of a student package, logged as "models from code": MLflow copies this file
into the model and runs it when the model is loaded, so loading executes this source and the
``searchspace`` package shipped beside it, never pickled bytecode. The weights are safetensors,
the rest JSON and the tokenizer's own files.

Nothing in this project imports this module: it is passed to MLflow by path.
Input: a DataFrame with the task's text column(s). Output: ``label`` and one ``prob_<label>``
column per class, or ``score`` for a regression task.
"""

import json
from pathlib import Path

import mlflow
import pandas as pd
import torch
from safetensors.torch import load_file


class StudentModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from transformers import AutoTokenizer

        from searchspace.config import SupernetConfig
        from searchspace.derived import DerivedStudent
        from searchspace.genotype import Genotype

        folder = Path(context.artifacts["student"])
        self.task = json.loads((folder / "task.json").read_text(encoding="utf-8"))
        genotype = Genotype.from_json((folder / "genotype.json").read_text(encoding="utf-8"))
        config = SupernetConfig.from_dict(
            json.loads((folder / "student_config.json").read_text(encoding="utf-8"))
        )
        self.student = DerivedStudent(config, genotype)
        self.student.load_state_dict(load_file(str(folder / "student.safetensors")))
        self.student.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))

    def _encode(self, texts):
        encoded = self.tokenizer(
            [str(text) for text in texts],
            truncation=True,
            max_length=self.task["max_seq_length"],
            padding=True,
            return_tensors="pt",
        )
        return encoded["input_ids"], encoded["attention_mask"]

    def predict(self, context, model_input, params=None):
        columns = self.task["text_columns"]
        missing = [name for name in columns if name not in model_input.columns]
        if missing:
            raise ValueError(f"input has no column(s) {missing}; this student reads {columns}")
        ids_a, mask_a = self._encode(model_input[columns[0]].tolist())
        ids_b, mask_b = self._encode(model_input[columns[-1]].tolist())
        if ids_b.shape[1] != ids_a.shape[1]:  # the first cell adds the two sentences' states
            length = max(ids_a.shape[1], ids_b.shape[1])
            ids_a, mask_a, ids_b, mask_b = (
                torch.nn.functional.pad(t, (0, length - t.shape[1]))
                for t in (ids_a, mask_a, ids_b, mask_b)
            )
        with torch.inference_mode():
            logits = self.student(ids_a, mask_a, ids_b, mask_b).float()
        labels = self.task["labels"]
        if labels is None:
            return pd.DataFrame({"score": logits[:, 0].numpy().astype("float64")})
        probabilities = torch.softmax(logits, dim=-1).numpy().astype("float64")
        output = pd.DataFrame({"label": [labels[i] for i in probabilities.argmax(axis=1)]})
        for index, name in enumerate(labels):
            output[f"prob_{name}"] = probabilities[:, index]
        return output


mlflow.models.set_model(StudentModel())
