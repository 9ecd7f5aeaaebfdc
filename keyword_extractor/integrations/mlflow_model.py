"""The MLflow pyfunc flavour of a keyword model: `list[str]` of questions in, `list[list[str]]` out.

Logged as MLflow "models from code" (this file is the model's code; nothing is
pickled). It wraps the model directory and `KeywordExtractor`, so a registered
version predicts exactly as the pipeline's evaluation and the service do.
"""

from __future__ import annotations

import mlflow.models
import mlflow.pyfunc

from keyword_extractor.model.artifact import MODEL_DIR_ARTIFACT


class KeywordExtractorModel(mlflow.pyfunc.PythonModel):
    """Loaded by `mlflow.pyfunc.load_model("models:/keyword-extractor@champion")`."""

    def load_context(self, context) -> None:
        from keyword_extractor.inference.extractor import KeywordExtractor

        self.extractor = KeywordExtractor(context.artifacts[MODEL_DIR_ARTIFACT])

    def predict(self, context, model_input: list[str], params: dict | None = None) -> list[list[str]]:
        return self.extractor.extract(list(model_input))


mlflow.models.set_model(KeywordExtractorModel())
